import keras
import numpy as np
import pytest
import tensorflow as tf

import infogan
import model


def fresh(config, optimizer="adam", precision="float32"):
    keras.utils.set_random_seed(0)
    generator, discriminator = infogan.build_models(precision)
    if optimizer == "adam":
        g_optimizer, d_optimizer = infogan.make_optimizers(generator, discriminator, config)
    else:  # plain SGD: an update is exactly -lr * gradient, so gradients can be compared
        g_optimizer, d_optimizer = keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1)
    return generator, discriminator, g_optimizer, d_optimizer


def step_of(config, *networks, compile=True):
    step = infogan.make_replica_step(*networks, config)
    return tf.function(step) if compile else step


def real_batch(size=16):
    return tf.constant(np.random.default_rng(1).uniform(-1, 1, (size, 28, 28, 1)), tf.float32)


def snapshot(variables):
    return [np.array(v) for v in variables]


def changed(before, variables):
    return any(not np.array_equal(b, np.asarray(v)) for b, v in zip(before, variables, strict=True))


def test_one_step_updates_g_body_and_q_and_keeps_losses_finite():
    config = infogan.Config(batch_size=16)
    networks = fresh(config)
    generator, discriminator = networks[:2]
    groups = {
        "generator": generator.trainable_variables,
        "body": model.body_variables(discriminator),
        "q_head": model.q_head_variables(discriminator),
        "d_head": discriminator.get_layer("d_logit").trainable_variables,
    }
    before = {name: snapshot(variables) for name, variables in groups.items()}
    losses = step_of(config, *networks)(real_batch(), tf.constant([0, 1]))
    assert set(losses) == set(infogan.loss_names(config))
    assert all(np.isfinite(float(value)) for value in losses.values())
    for name, variables in groups.items():
        assert changed(before[name], variables), f"{name} was not updated"


def body_update(lambda_cat, lambda_cont, lambda_cat_augmented):
    config = infogan.Config(
        batch_size=16,
        lambda_cat=lambda_cat,
        lambda_cont=lambda_cont,
        lambda_cat_augmented=lambda_cat_augmented,
    )
    networks = fresh(config, optimizer="sgd")
    body = model.body_variables(networks[1])
    before = snapshot(body)
    step_of(config, *networks)(real_batch(), tf.constant([0, 1]))
    return [np.asarray(v) - b for b, v in zip(before, body, strict=True)]


def test_info_loss_reaches_the_shared_body():
    # Same weights, batch and latents: only the info-loss weights differ. If the info loss did
    # not reach the body (frozen, stopped, or left out of the optimizer), the updates would match.
    without_info = body_update(0.0, 0.0, 0.0)
    for weights in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]:
        with_info = body_update(*weights)
        assert any(
            not np.allclose(a, b, rtol=1e-4, atol=1e-7)
            for a, b in zip(with_info, without_info, strict=True)
        ), f"lambdas {weights} left the body's update unchanged"


def test_the_contrastive_loss_updates_g_and_the_pair_discriminator_only():
    # InfoGAN-CR's loss is cooperative, like the info loss, but it must not reach D or Q: from
    # the same weights, batch and latents, only G's update may change with its weight.
    updates, losses = [], []
    for weight in (0.0, 1.0):
        config = infogan.Config(batch_size=16, lambda_contrastive=weight)
        generator, discriminator, *_ = networks = fresh(config, optimizer="sgd")
        keras.utils.set_random_seed(1)
        pair_discriminator = model.build_pair_discriminator()
        pair_before = snapshot(pair_discriminator.trainable_variables)
        variables = generator.trainable_variables + discriminator.trainable_variables
        before = snapshot(variables)
        step = infogan.make_replica_step(
            *networks, config, pair=(pair_discriminator, keras.optimizers.SGD(0.1))
        )
        losses.append(tf.function(step)(real_batch(), tf.constant([0, 1])))
        assert changed(pair_before, pair_discriminator.trainable_variables)
        updates.append([np.asarray(v) - b for b, v in zip(before, variables, strict=True)])
    assert 0.5 < float(losses[1]["contrastive_nll"]) < 2  # about log 3 before any training
    g_count = len(generator.trainable_variables)
    assert any(not np.allclose(a, b) for a, b in zip(*(u[:g_count] for u in updates), strict=True))
    for a, b in zip(*(u[g_count:] for u in updates), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    assert float(losses[1]["g_loss"]) == pytest.approx(
        float(losses[0]["g_loss"]) + float(losses[1]["contrastive_nll"]), rel=1e-5
    )
    assert "contrastive_nll" in infogan.loss_names(config)


def test_the_info_loss_is_the_weighted_sum_of_its_terms():
    config = infogan.Config(batch_size=16, lambda_cont=0.3, lambda_cat_augmented=0.5)
    losses = step_of(config, *fresh(config, optimizer="sgd"))(real_batch(), tf.constant([0, 1]))
    losses = {name: float(value) for name, value in losses.items()}
    assert losses["augmented_categorical_nll"] > 0
    assert losses["info_loss"] == pytest.approx(
        losses["categorical_nll"]
        + 0.3 * losses["continuous_nll"]
        + 0.5 * losses["augmented_categorical_nll"],
        rel=1e-5,
    )
    off = infogan.Config(batch_size=16, lambda_cat_augmented=0.0)
    assert "augmented_categorical_nll" not in step_of(off, *fresh(off))(
        real_batch(), tf.constant([0, 1])
    )


def test_the_augmented_loss_rotates_by_the_configured_range(monkeypatch):
    ranges = []
    affine_transforms = infogan.affine_transforms

    def recording(count, seed, max_degrees):
        ranges.append(max_degrees)
        return affine_transforms(count, seed, max_degrees)

    monkeypatch.setattr(infogan, "affine_transforms", recording)

    upright = []
    deslanted = infogan.deslanted
    monkeypatch.setattr(infogan, "deslanted", lambda *args: upright.append(1) or deslanted(*args))

    def augmented_nll(degrees, deslant=False):
        config = infogan.Config(batch_size=16, augment_degrees=degrees, augment_deslant=deslant)
        step = step_of(config, *fresh(config), compile=False)
        return float(step(real_batch(), tf.constant([0, 1]))["augmented_categorical_nll"])

    assert augmented_nll(90.0) == augmented_nll(90.0)
    assert augmented_nll(0.0) != augmented_nll(90.0)
    assert ranges == [90.0, 90.0, 0.0, 90.0] and not upright
    assert augmented_nll(0.0, deslant=True) != augmented_nll(0.0)  # --augment-deslant shears
    assert upright == [1]


def test_augment_epochs_switch_the_range_the_compiled_step_reads():
    config = infogan.Config(augment_degrees=30.0, augment_epochs=3, late_augment_degrees=10.0)
    assert [infogan.augment_degrees(config, epoch) for epoch in (1, 3, 4, 20)] == [30, 30, 10, 10]
    assert infogan.augment_degrees(infogan.Config(augment_degrees=30.0), 20) == 30.0

    def augmented_nll(config, degrees=None):  # the first step's loss, from fresh networks
        step = tf.function(infogan.make_replica_step(*fresh(config), config, None, degrees))
        return step, float(step(real_batch(), tf.constant([0, 1]))["augmented_categorical_nll"])

    scheduled = infogan.Config(batch_size=16, augment_degrees=30.0, augment_epochs=3)
    degrees = tf.Variable(15.0)  # the variable's range, not the config's 30
    step, loss = augmented_nll(scheduled, degrees)
    fixed = infogan.Config(batch_size=16, augment_degrees=15.0)
    assert loss == pytest.approx(augmented_nll(fixed)[1], rel=1e-5)
    degrees.assign(30.0)
    step(real_batch(), tf.constant([0, 2]))
    assert step.experimental_get_tracing_count() == 1  # it reads the variable, not a constant


@pytest.mark.parametrize("optimizer, augmented", [("sgd", 0.0), ("adam", 0.0), ("sgd", 1.0)])
def test_compiled_step_matches_eager_step(optimizer, augmented):
    config = infogan.Config(batch_size=16, lambda_cat_augmented=augmented)
    runs = []
    for compile_step in (False, True):
        step = step_of(config, *fresh(config, optimizer), compile=compile_step)
        # With the augmented loss a third SGD step drifts to ~1e-3 (eager and compiled are each
        # deterministic; the first two steps agree to 1e-6), so that case compares two steps.
        steps = 2 if augmented else 3
        runs.append(
            [
                {k: float(v) for k, v in step(real_batch(), tf.constant([7, i])).items()}
                for i in range(steps)
            ]
        )
    eager, compiled = runs
    # SGD carries float round-off along unchanged. Adam's first update is about lr * sign(g), so
    # round-off in a near-zero gradient can flip a sign: its later steps get a looser bound.
    for step_index, (e, c) in enumerate(zip(eager, compiled, strict=True)):
        tolerance = 1e-4 if optimizer == "sgd" or step_index == 0 else 2e-2
        for name in e:
            assert c[name] == pytest.approx(e[name], rel=tolerance), (step_index, name)


def test_graph_optimizer_accepts_the_step(capfd):
    """TF's remapper failed on the step when the moved fakes had no static size, and logged
    'remapper failed' on every run."""
    config = infogan.Config(batch_size=16)
    step = step_of(config, *fresh(config))
    capfd.readouterr()
    step(real_batch(), tf.constant([0, 1]))["d_loss"].numpy()
    assert "remapper failed" not in capfd.readouterr().err


def test_bf16_step_computes_the_same_losses_and_updates_as_float32():
    # Same float32 weights, batch and latents in both precisions: bf16 keeps ~3 significant
    # digits, so losses agree to ~1% and the SGD updates point the same way.
    config = infogan.Config(batch_size=32)
    runs = {}
    for precision in ("float32", "mixed_bfloat16"):
        networks = fresh(config, "sgd", precision)
        generator, discriminator = networks[:2]
        computing = {layer.dtype_policy.name for layer in discriminator.layers if layer.weights}
        assert computing == {precision}  # the layers really compute in this precision
        if runs:  # identical starting weights
            generator.set_weights(runs["float32"]["start"][0])
            discriminator.set_weights(runs["float32"]["start"][1])
        start = (generator.get_weights(), discriminator.get_weights())
        losses = step_of(config, *networks)(real_batch(32), tf.constant([3, 4]))
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
        assert float(half["losses"][name]) == pytest.approx(float(value), rel=0.02, abs=0.01)
    a = np.concatenate([u.ravel() for u in full["updates"]])
    b = np.concatenate([u.ravel() for u in half["updates"]])
    assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.97


def uint8_images(count=300):  # (count, 28, 28) stand-ins for training images
    return np.random.default_rng(2).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def test_float32_exports_of_a_bf16_run_compute_what_float32_models_would():
    config = infogan.Config(
        batch_size=16, precision="mixed_bfloat16", discriminator_statistics="training"
    )
    training = infogan.Training(config, tf.distribute.get_strategy(), "mixed_bfloat16")
    exported_generator, exported = training.exports
    assert exported is not training.discriminator
    training.sync_exports(uint8_images())
    _, reference = infogan.build_models("float32")
    reference.set_weights(training.discriminator.get_weights())
    images = real_batch()
    assert {layer.dtype_policy.name for layer in exported.layers} == {"float32"}
    for ours, theirs in zip(exported(images, training=False), reference(images, training=False),
                            strict=True):  # fmt: skip
        assert ours.dtype == "float32"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    float32 = infogan.Training(infogan.Config(), tf.distribute.get_strategy(), "float32")
    assert float32.exports == float32.saved  # nothing to copy


def test_the_q_head_option_reaches_the_trained_and_the_exported_discriminator():
    config = infogan.Config(batch_size=16, q_head="separate")
    training = infogan.Training(config, tf.distribute.get_strategy(), "mixed_bfloat16")
    for discriminator in (training.discriminator, training.exports[1]):
        names = {layer.name for layer in discriminator.layers}
        assert {"q_fc1_categorical", "q_fc1_continuous"} <= names and "q_fc1" not in names
    training.sync_exports(uint8_images())  # the weights copy between the two
    np.testing.assert_array_equal(
        training.exports[1].get_layer("q_fc1_continuous").kernel,
        training.discriminator.get_layer("q_fc1_continuous").kernel,
    )


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_the_generator_average_trails_g_and_is_exported_with_its_own_statistics(precision):
    config = infogan.Config(batch_size=16, generator_ema=0.9)
    keras.utils.set_random_seed(0)
    training = infogan.Training(config, tf.distribute.get_strategy(), precision)
    average, generator = training.generator_ema, training.generator
    start = snapshot(generator.trainable_variables)
    assert not changed(start, average.trainable_variables)  # it starts at G's weights
    initial_statistics = snapshot(generator.non_trainable_variables)
    training.train_step(real_batch(), tf.constant([0, 1]))
    trained = snapshot(generator.trainable_variables)
    assert changed(start, generator.trainable_variables)
    for mean, before, after in zip(average.trainable_variables, start, trained, strict=True):
        np.testing.assert_allclose(np.asarray(mean), 0.9 * before + 0.1 * after, atol=1e-6)
    assert not changed(initial_statistics, average.non_trainable_variables)  # not in the step

    g_statistics = snapshot(generator.non_trainable_variables)
    training.sync_exports(uint8_images())
    exported = training.exports[0]
    assert training.saved[0] is average
    # The average computes in float32 under every policy: on one device it is its own export.
    assert exported is average and average.compute_dtype == "float32"
    # Its batch-norm statistics are the means of those of passes over the statistics latents,
    # a chunk at a time; G's own statistics (from training) are left as they were.
    fc1 = keras.Model(exported.inputs, exported.get_layer("g_fc1").output)
    hidden = np.asarray(fc1(training.statistics_latent))  # (STATISTICS_SAMPLES, 1024)
    chunks = hidden.reshape(-1, infogan.STATISTICS_CHUNK, hidden.shape[-1])
    norm = exported.get_layer("g_bn1")
    np.testing.assert_allclose(norm.moving_mean, hidden.mean(0), atol=1e-5)
    np.testing.assert_allclose(norm.moving_variance, chunks.var(1).mean(0), rtol=1e-4, atol=1e-6)
    assert norm.momentum == generator.get_layer("g_bn1").momentum  # restored after the pass
    assert not changed(g_statistics, generator.non_trainable_variables)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_the_saved_discriminator_gets_the_statistics_of_real_images(precision):
    config = infogan.Config(batch_size=16, discriminator_statistics="real")
    keras.utils.set_random_seed(0)
    training = infogan.Training(config, tf.distribute.get_strategy(), precision)
    training.train_step(real_batch(), tf.constant([0, 1]))
    discriminator, exported = training.discriminator, training.exports[1]
    trained_statistics = snapshot(discriminator.non_trainable_variables)
    x_train = uint8_images(300)  # two passes of unequal size: 256 and 44 images
    training.sync_exports(x_train)
    images = infogan.statistics_images(x_train, [config.seed, 3])  # (300, 28, 28, 1)
    np.testing.assert_array_equal(images, infogan.to_model_range(x_train))  # all 300, in order
    # Each batch norm's moving mean must be the mean of its training-mode inputs over all 300
    # images, its variance the passes' variances weighted by their sizes (256 and 44 images).
    twin = infogan.build_discriminator()  # float32, same weights: its passes give the inputs
    infogan.copy_weights(twin, exported)
    for name in ("d_bn2", "d_bn3", "q_bn1"):
        inputs_of = keras.Model(twin.input, twin.get_layer(name).input)
        chunks = [
            np.asarray(inputs_of(part, training=True)) for part in (images[:256], images[256:])
        ]
        axes = tuple(range(chunks[0].ndim - 1))  # all but the channels
        norm = exported.get_layer(name)
        mean = sum(len(c) * c.mean(axes) for c in chunks) / 300
        variance = sum(len(c) * c.var(axes) for c in chunks) / 300
        np.testing.assert_allclose(norm.moving_mean, mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(norm.moving_variance, variance, rtol=1e-3, atol=1e-5)
        assert norm.momentum == 0.99  # Keras's default, restored after the passes
    if precision == "mixed_bfloat16":  # the trained model's own statistics are left as they were
        assert not changed(trained_statistics, discriminator.non_trainable_variables)


def test_the_statistics_images_are_a_fixed_sample_of_the_training_images():
    x_train = uint8_images(2 * infogan.STATISTICS_SAMPLES)
    images = infogan.statistics_images(x_train, [0, 3])
    assert images.shape == (infogan.STATISTICS_SAMPLES, 28, 28, 1)
    np.testing.assert_array_equal(images, infogan.statistics_images(x_train, [0, 3]))
    rows = {image.tobytes() for image in infogan.to_model_range(x_train)}
    assert all(image.tobytes() in rows for image in images)
    assert len({image.tobytes() for image in images}) == len(images)  # no image twice
    assert not np.array_equal(images, infogan.statistics_images(x_train, [1, 3]))


def test_the_epoch_loop_sets_the_range_of_its_epoch():
    from conftest import MNIST_SMALL

    from utils import read_data

    config = infogan.Config(batch_size=16, augment_degrees=30.0, augment_epochs=1, seed=0)
    strategy = infogan.make_strategy("one")
    training = infogan.Training(config, strategy, "float32")
    x_train = tf.constant(read_data(MNIST_SMALL)[0][:32])
    clock, writer = infogan.Clock(2, 16), tf.summary.create_noop_writer()
    for epoch, expected in ((1, 30.0), (2, 15.0)):
        infogan.train_epoch(training, x_train, config, epoch, clock, writer, max_steps=1)
        assert float(training.augment_degrees) == expected
