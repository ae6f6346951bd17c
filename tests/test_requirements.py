import importlib.metadata
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pinned():
    pins = {}
    with open(os.path.join(ROOT, "requirements.txt")) as handle:
        for line in handle:
            match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line)
            if match:
                pins[match.group(1)] = match.group(2)
    return pins


def test_every_dependency_is_pinned_and_installed_at_that_version():
    pins = pinned()
    for name in ("tensorflow", "tensorflow-probability", "tf-keras", "keras", "pytest"):
        assert name in pins, f"{name} is not pinned"
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, name


def test_pinned_set_imports_together():
    import keras
    import tensorflow as tf
    import tensorflow_probability as tfp  # fails under Keras 3 unless tf-keras is installed

    assert tf.__version__ == pinned()["tensorflow"]
    assert keras.__version__.startswith("3.")  # model.py is written for Keras 3
    assert float(tfp.distributions.Normal(0.0, 1.0).log_prob(0.0)) < 0
