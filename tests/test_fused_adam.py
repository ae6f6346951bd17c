import keras
import numpy as np
import tensorflow as tf

import fused_adam


def adam_run(optimizer_class, steps=4):
    """Variables, first and second moments after `steps` compiled updates from fixed gradients.
    The gradient scales span 1e-9 to 1, so that epsilon (1e-7) decides the smallest variable's
    update; the weights start near 0, so float32 resolves each update."""
    rng = np.random.default_rng(0)
    scales = [1.0, 1e-3, 1e-9]
    variables = [keras.Variable(1e-6 * rng.normal(size=(64, 32)).astype("float32")) for _ in scales]
    gradients = [
        [tf.constant(scale * rng.normal(size=(64, 32)), tf.float32) for scale in scales]
        for _ in range(steps)
    ]
    optimizer = optimizer_class(1e-3, beta_1=0.5, beta_2=0.999)
    optimizer.build(variables)
    apply = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables, strict=True)))
    for grads in gradients:
        apply(grads)
    return optimizer, variables


def assert_close(actual, expected, rtol):
    expected, actual = np.asarray(expected), np.asarray(actual)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def test_fused_adam_makes_keras_adams_updates():
    (keras_adam, keras_vars), (fused, fused_vars) = (
        adam_run(keras.optimizers.Adam),
        adam_run(fused_adam.FusedAdam),
    )
    start = adam_run(keras.optimizers.Adam, steps=0)[1]
    assert int(fused.iterations) == int(keras_adam.iterations) == 4
    for expected, actual, initial in zip(keras_vars, fused_vars, start, strict=True):
        update = np.asarray(expected) - np.asarray(initial)
        assert np.abs(update).max() > 0
        assert_close(np.asarray(actual) - np.asarray(initial), update, rtol=1e-4)
    for expected, actual in zip(
        keras_adam._momentums + keras_adam._velocities,
        fused._momentums + fused._velocities,
        strict=True,
    ):
        assert_close(actual, expected, rtol=1e-5)


def test_fused_adam_runs_the_fused_kernel():
    """Equal updates alone would also pass if FusedAdam quietly fell back to Keras's ops."""
    variable = keras.Variable(np.zeros((4,), "float32"))
    optimizer = fused_adam.FusedAdam(1e-3)
    optimizer.build([variable])

    @tf.function
    def apply(gradient):
        optimizer.apply_gradients([(gradient, variable)])

    graph = apply.get_concrete_function(tf.ones(4)).graph
    assert "ResourceApplyAdam" in {op.type for op in graph.get_operations()}


def test_fused_adam_resumes_from_a_keras_adam_checkpoint(tmp_path):
    """Runs checkpointed before FusedAdam existed (keras.optimizers.Adam) resume with their
    moments and step count."""
    keras_adam, keras_vars = adam_run(keras.optimizers.Adam)
    path = tf.train.Checkpoint(optimizer=keras_adam).save(str(tmp_path / "ckpt"))
    fused = fused_adam.FusedAdam(1e-3, beta_1=0.5, beta_2=0.999)
    fused.build([keras.Variable(np.zeros_like(v)) for v in keras_vars])
    tf.train.Checkpoint(optimizer=fused).restore(path).assert_consumed()
    assert int(fused.iterations) == 4
    for expected, actual in zip(
        keras_adam._momentums + keras_adam._velocities,
        fused._momentums + fused._velocities,
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def test_make_adam_falls_back_with_one_warning_where_unsupported(monkeypatch, capsys):
    assert isinstance(fused_adam.make_adam(1e-3, 0.5, 0.999), fused_adam.FusedAdam)
    assert capsys.readouterr().err == ""
    fused_adam._warned.clear()
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    optimizers = [fused_adam.make_adam(1e-3, 0.5, 0.999) for _ in range(2)]
    assert all(type(o) is keras.optimizers.Adam for o in optimizers)
    warning = capsys.readouterr().err
    assert (
        warning.count("\n") == 1 and "keras 3.99.0 is not a version it was checked with" in warning
    )
    monkeypatch.undo()
    assert type(fused_adam.make_adam(1e-3, 0.5, 0.999, replicas=2)) is keras.optimizers.Adam
    assert "2 replicas" in capsys.readouterr().err
    assert type(fused_adam.make_adam(1e-3, 0.5, 0.999, fused=False)) is keras.optimizers.Adam
    assert capsys.readouterr().err == ""  # not asked for: nothing to warn about
