import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist.npz")


def small_mnist(train=640, test=200):
    """A slice of real MNIST from ../shared/data/mnist.npz if present, else random data."""
    if os.path.exists(SHARED_MNIST):
        with np.load(SHARED_MNIST) as npz:
            return {
                "x_train": npz["x_train"][:train],
                "y_train": npz["y_train"][:train],
                "x_test": npz["x_test"][:test],
                "y_test": npz["y_test"][:test],
            }
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, test).astype(np.uint8),
    }


@pytest.fixture(scope="session")
def mnist_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist_small.npz"
    np.savez(path, **small_mnist())
    return str(path)


# Few steps and small batches: the end-to-end tests check plumbing, not quality. bf16 on every
# machine, so that the switch to float32 for saving and evaluation is always exercised.
TINY_RUN = [
    "--batch-size",
    "32",
    "--grid-columns",
    "3",
    "--no-progress",
    "--precision",
    "mixed_bfloat16",
]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist_file):
    """A 2-epoch run on the small data set (20 steps an epoch): its run folder."""
    import infogan

    out = str(tmp_path_factory.mktemp("run"))
    infogan.main(["--epochs", "2", "--data", mnist_file, "--out", out, *TINY_RUN])
    return out
