import keras
import numpy as np
import pytest
import tensorflow as tf

import infogan
from utils import cpu_has_bf16_matmul, resolve_precision


def test_auto_precision_follows_the_hardware():
    assert resolve_precision("auto", [(9, 0)]) == "mixed_bfloat16"  # H100/H200
    assert resolve_precision("auto", [(7, 5)]) == "float32"  # T4: no bf16 tensor cores
    assert resolve_precision("auto", [], cpu_bf16=True) == "mixed_bfloat16"
    assert resolve_precision("auto", [], cpu_bf16=False) == "float32"
    assert resolve_precision("float32", [(9, 0)]) == "float32"  # an explicit choice wins


def test_unknown_precision_is_a_one_line_error():
    with pytest.raises(infogan.UserError, match="--precision must be one of"):
        infogan.parse_config(["--precision", "float16"])


def test_cpu_bf16_flag_is_read_from_cpuinfo(tmp_path):
    with_bf16 = tmp_path / "bf16"
    with_bf16.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 fma\n")
    without = tmp_path / "plain"
    without.write_text("flags\t\t: fpu avx2 avx512f fma\n")
    assert cpu_has_bf16_matmul(str(with_bf16))
    assert not cpu_has_bf16_matmul(str(without))
    assert not cpu_has_bf16_matmul(str(tmp_path / "missing"))


def test_bf16_step_computes_the_same_losses_and_updates_as_float32():
    # Same float32 weights, batch and latents in both precisions: bf16 keeps ~3 significant
    # digits, so losses agree to ~1% (measured 0.3%) and the SGD updates point the same way.
    config = infogan.Config()
    real = tf.constant(np.random.default_rng(1).uniform(-1, 1, (32, 28, 28, 1)), tf.float32)
    runs = {}
    for precision in ("float32", "mixed_bfloat16"):
        keras.utils.set_random_seed(0)
        generator, discriminator = infogan.build_models(precision)
        computing = {layer.dtype_policy.name for layer in discriminator.layers if layer.weights}
        assert computing == {precision}  # the layers really compute in this precision
        if runs:  # identical starting weights
            generator.set_weights(runs["float32"]["start"][0])
            discriminator.set_weights(runs["float32"]["start"][1])
        start = (generator.get_weights(), discriminator.get_weights())
        step = infogan.make_train_step(
            generator, discriminator, keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1), config
        )
        losses = {k: float(v) for k, v in step(real, tf.constant([3, 4])).items()}
        updates = [
            np.asarray(after) - before
            for before, after in zip(
                start[0] + start[1],
                generator.get_weights() + discriminator.get_weights(),
                strict=True,
            )
        ]
        assert all(w.dtype == np.float32 for w in generator.get_weights())
        runs[precision] = {"start": start, "losses": losses, "updates": updates}

    full, half = runs["float32"], runs["mixed_bfloat16"]
    for name, value in full["losses"].items():
        assert half["losses"][name] == pytest.approx(value, rel=0.02, abs=0.01), name
    a = np.concatenate([u.ravel() for u in full["updates"]])
    b = np.concatenate([u.ravel() for u in half["updates"]])
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert cosine > 0.97  # measured 0.987 on this machine


def test_computing_in_float32_reads_the_bf16_models_as_float32_models_would(tmp_path):
    keras.utils.set_random_seed(1)
    trained_generator, trained = infogan.build_models("mixed_bfloat16")
    _, reference = infogan.build_models("float32")
    reference.set_weights(trained.get_weights())
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)), tf.float32)

    with infogan.computing_in("float32", trained_generator, trained):
        assert {layer.dtype_policy.name for layer in trained.layers} == {"float32"}
        outputs = trained(images, training=False)
        infogan.save_model(trained, str(tmp_path / "d.keras"))
    for ours, theirs in zip(outputs, reference(images, training=False), strict=True):
        assert ours.dtype == "float32"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    # Afterwards the layers compute in bf16 again, and the saved file is a float32 model.
    assert {layer.dtype_policy.name for layer in trained.layers} == {"mixed_bfloat16"}
    assert trained(images, training=False)[0].dtype == "bfloat16"
    loaded = keras.saving.load_model(str(tmp_path / "d.keras"))
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    for ours, theirs in zip(loaded(images), reference(images), strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
