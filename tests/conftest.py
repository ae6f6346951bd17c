import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Two logical CPU devices, so MirroredStrategy can be tested on any machine; set before anything
# else initializes TensorFlow's devices (single-device code uses the first).
from utils import import_tensorflow  # noqa: E402

tf = import_tensorflow()

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import infogan  # noqa: E402

# Tiny runs check plumbing, not quality: batch-norm statistics of the averaged G from 512 latents
# and of the saved D from the 320 images (two passes each), not 2048 (eight), save time each epoch.
infogan.STATISTICS_SAMPLES = 512

DATA = os.path.join(ROOT, "tests", "data")
MNIST_SMALL = os.path.join(DATA, "mnist_small.npz")  # 320 train, 200 test images of real MNIST
FASHION_SMALL = os.path.join(DATA, "fashion_small")  # the same of Fashion-MNIST, IDX files
TRAIN_IMAGES = 320

# Few steps and small batches: the end-to-end tests check plumbing, not quality. bf16 on every
# machine, so that the float32 models for saving and evaluation are always exercised.
BATCH = 32
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH
TINY_RUN = ["--batch-size", str(BATCH), "--grid-columns", "3", "--no-progress",
            "--precision", "mixed_bfloat16", "--data", MNIST_SMALL]  # fmt: skip


def pytest_collection_modifyitems(items):
    """Tests marked slow first: the two pytest-xdist workers take them on at the start and
    share the quick ones at the end, rather than one idling while the other runs a slow one."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: else as found


@pytest.fixture(scope="session")
def mnist_file():
    return MNIST_SMALL


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A 2-epoch run on the small data set (10 steps an epoch): its run folder."""
    import infogan

    out = str(tmp_path_factory.mktemp("run"))
    infogan.main(["--epochs", "2", "--out", out, *TINY_RUN])
    return out
