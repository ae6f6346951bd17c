import numpy as np
import pytest
import tensorflow as tf

import model
import utils
from utils import CATEGORICAL_DIM, CONTINUOUS_DIM, LATENT_DIM, NOISE_DIM


def dense(fan_in, units, bias=True):
    return fan_in * units + (units if bias else 0)


def conv(kernel, channels_in, channels_out, bias=True):
    return kernel * kernel * channels_in * channels_out + (channels_out if bias else 0)


def bn(units):
    return 4 * units  # gamma, beta, moving mean, moving variance


def test_latent_layout_constants():
    assert LATENT_DIM == 74 and (CATEGORICAL_DIM, CONTINUOUS_DIM, NOISE_DIM) == (10, 2, 62)
    covered = np.zeros(LATENT_DIM, int)
    for part in (utils.CATEGORICAL_SLICE, utils.CONTINUOUS_SLICE, utils.NOISE_SLICE):
        covered[part] += 1
    assert (covered == 1).all()


def test_generator_shapes_and_parameters():
    generator = model.build_generator()
    assert generator.input_shape == (None, 74)
    assert generator.output_shape == (None, 28, 28, 1)
    # Table 1 of the paper: FC 1024-BN, FC 7x7x128-BN, deconv 64-BN, deconv 1.
    expected = (
        dense(74, 1024, False) + bn(1024) + dense(1024, 7 * 7 * 128, False) + bn(7 * 7 * 128)
        + conv(4, 128, 64, False) + bn(64) + conv(4, 64, 1)
    )  # fmt: skip
    assert generator.count_params() == expected
    images = np.asarray(generator(np.zeros((3, 74), np.float32), training=False))
    assert images.shape == (3, 28, 28, 1) and np.abs(images).max() <= 1.0


def test_discriminator_shapes_and_parameters():
    discriminator = model.build_discriminator()
    expected = (
        conv(4, 1, 64) + conv(4, 64, 128, False) + bn(128) + dense(7 * 7 * 128, 1024, False)
        + bn(1024) + dense(1024, 1)  # body + D head
        + dense(1024, 128, False) + bn(128) + dense(128, 10) + 2 * dense(128, 2)  # Q head
    )  # fmt: skip
    assert discriminator.count_params() == expected
    outputs = discriminator(np.zeros((5, 28, 28, 1), np.float32), training=False)
    assert [tuple(o.shape) for o in outputs] == [(5, 1), (5, 10), (5, 2), (5, 2)]


def test_q_has_its_own_mean_and_std_per_code():
    discriminator = model.build_discriminator()
    for name in ("continuous_mean", "continuous_log_std"):
        kernel = discriminator.get_layer(name).kernel
        assert tuple(kernel.shape) == (128, CONTINUOUS_DIM)  # one output unit per code


def test_a_separate_q_head_gives_each_kind_of_code_its_own_hidden_layer():
    images = tf.random.stateless_uniform((8, 28, 28, 1), [0, 1], -1, 1)
    used = {}
    for q_head in ("shared", "separate"):
        discriminator = model.build_discriminator(q_head=q_head)
        hidden = [v for v in model.q_head_variables(discriminator) if "fc1" in v.path]
        with tf.GradientTape(persistent=True) as tape:
            _, categorical_logits, mean, _ = discriminator(images, training=True)
        used[q_head] = [
            [tape.gradient(output, kernel) is not None for kernel in hidden]
            for output in (categorical_logits, mean)
        ]
    assert used["shared"] == [[True], [True]]  # the paper: one q_fc1 for all outputs
    assert used["separate"] == [[True, False], [False, True]]  # q_fc1_categorical, _continuous
    second_hidden_layer = dense(1024, 128, False) + bn(128)
    separate, shared = model.build_discriminator(q_head="separate"), model.build_discriminator()
    assert separate.count_params() == shared.count_params() + second_hidden_layer


@pytest.mark.parametrize("q_head", ["shared", "separate"])
def test_variable_groups_partition_the_discriminator(q_head):
    discriminator = model.build_discriminator(q_head=q_head)
    body = {id(v) for v in model.body_variables(discriminator)}
    head = {id(v) for v in model.q_head_variables(discriminator)}
    d_head = {id(v) for v in discriminator.get_layer("d_logit").trainable_variables}
    assert body and head and not body & head and not body & d_head and not head & d_head
    assert body | head | d_head == {id(v) for v in discriminator.trainable_variables}


@pytest.mark.parametrize("build", [model.build_generator, model.build_discriminator])
def test_keras_round_trip_gives_identical_outputs(tmp_path, build):
    import keras

    network = build()
    path = tmp_path / "net.keras"
    network.save(path)
    loaded = keras.models.load_model(path)  # no custom objects needed
    shape = (4, *network.input_shape[1:])
    inputs = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    before, after = network(inputs, training=False), loaded(inputs, training=False)
    before, after = tf.nest.flatten(before), tf.nest.flatten(after)
    assert len(before) == len(after) == len(tf.nest.flatten(network.outputs))
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_synchronized_batch_norm_is_an_option_that_survives_saving(tmp_path):
    import keras

    for build in (model.build_generator, model.build_discriminator):
        plain, synced = build(), build(synchronized_bn=True)
        norms = [layer for layer in synced.layers if "bn" in layer.name]
        assert norms and all(layer.synchronized for layer in norms)
        assert not any(layer.synchronized for layer in plain.layers if "bn" in layer.name)
        synced.save(tmp_path / "m.keras")
        loaded = keras.models.load_model(tmp_path / "m.keras")
        assert all(loaded.get_layer(layer.name).synchronized for layer in norms)
