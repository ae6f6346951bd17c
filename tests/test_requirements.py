import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def requirement_lines(name):
    with open(os.path.join(ROOT, name)) as handle:
        lines = [line.split("#")[0].strip() for line in handle]
    return [line for line in lines if line and not line.startswith("-r")]


def test_every_requirement_is_pinned_to_one_version():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in requirement_lines(name):
            assert re.fullmatch(r"[A-Za-z0-9_.\[\]-]+==[0-9][^\s,;]*", line), f"{name}: {line}"
    pinned = {line.split("==")[0].lower() for line in requirement_lines("requirements.txt")}
    for package in ("tensorflow", "keras", "tensorflow-probability", "tf-keras", "tensorboard"):
        assert package in pinned, package


def test_pinned_set_imports_together():
    import keras
    import tensorflow as tf
    import tensorflow_probability as tfp  # fails under Keras 3 unless tf-keras is installed
    from tensorboard.backend.event_processing import event_accumulator  # noqa: F401

    assert keras.__version__.startswith("3.")  # model.py is written for Keras 3
    assert float(tfp.distributions.Normal(0.0, 1.0).log_prob(0.0)) < 0
    assert tf.summary.create_noop_writer() is not None
