import gzip
import os

import numpy as np
import pytest
from conftest import FASHION_SMALL, MNIST_SMALL

import infogan
import utils
from utils import UserError, load_dataset, read_data


def arrays(source=MNIST_SMALL):
    return dict(zip(("x_train", "y_train", "x_test", "y_test"), read_data(source), strict=True))


def write_npz(path, **data):
    np.savez(path, **data)
    return str(path)


def test_reads_the_committed_subsets_in_both_formats():
    for source in (MNIST_SMALL, FASHION_SMALL):
        x_train, y_train, x_test, y_test = read_data(source)
        assert x_train.shape == (320, 28, 28) and x_train.dtype == np.uint8
        assert y_train.shape == (320,) and x_test.shape == (200, 28, 28) and y_test.shape == (200,)
        assert set(np.unique(y_train)) == set(range(10))
    assert not np.array_equal(read_data(MNIST_SMALL)[0], read_data(FASHION_SMALL)[0])


def test_an_idx_folder_reads_as_the_npz_it_came_from(tmp_path):
    from tests.data.make_subset import write_idx

    data = arrays()
    for name, file_name in utils.IDX_FILES.items():
        write_idx(str(tmp_path / file_name), data[name])
    for ours, theirs in zip(read_data(str(tmp_path)), data.values(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    with gzip.open(tmp_path / utils.IDX_FILES["y_test"]) as handle:  # unzipped names work too
        (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(handle.read())
    os.remove(tmp_path / utils.IDX_FILES["y_test"])
    np.testing.assert_array_equal(read_data(str(tmp_path))[3], data["y_test"])


def test_named_data_sets_come_from_their_offline_sources(monkeypatch, tmp_path):
    monkeypatch.setitem(utils.DATASET_SOURCES, "fashion_mnist", [str(tmp_path / "no"),
                                                                 FASHION_SMALL])  # fmt: skip
    np.testing.assert_array_equal(load_dataset("fashion_mnist")[0], read_data(FASHION_SMALL)[0])
    monkeypatch.setitem(utils.DATASET_SOURCES, "mnist", [MNIST_SMALL])
    assert load_dataset("mnist")[0].shape == (320, 28, 28)
    assert load_dataset("fashion_mnist", MNIST_SMALL)[0].shape == (320, 28, 28)  # --data wins


def test_offline_without_a_source_says_how_to_pass_one(monkeypatch, tmp_path):
    import keras

    def offline():
        raise OSError("Name or service not known")

    monkeypatch.setitem(utils.DATASET_SOURCES, "mnist", [str(tmp_path / "none.npz")])
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(UserError, match="could not be downloaded.*--data PATH"):
        load_dataset("mnist")


def without(name):
    data = arrays()
    del data[name]
    return data


def replaced(**changes):
    return {**arrays(), **changes}


BAD_FILES = {
    "missing arrays": (without("y_test"), r"missing arrays \['y_test'\]"),
    "wrong shape": (replaced(x_train=np.zeros((20, 32, 32), np.uint8)), r"shape \(20, 32, 32\)"),
    "colour": (replaced(x_test=np.zeros((10, 28, 28, 3), np.uint8)), "grayscale"),
    "wrong dtype": (replaced(x_train=np.zeros((320, 28, 28), np.float64)), "dtype float64"),
    "no test split": (
        replaced(x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8)),
        "needs a test split",
    ),
    "label count": (replaced(y_train=np.zeros(319, np.uint8)), "320 images but y_train 319"),
    "label range": (replaced(y_test=np.full(200, 12, np.uint8)), "labels 12..12"),
    "few label values": (
        replaced(y_train=np.arange(320, dtype=np.uint8) % 7),
        "7 label values",
    ),
    "pickled objects": (replaced(y_test=np.array([object()] * 200)), "cannot be read"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_data_sets_get_one_line_naming_the_file(tmp_path, case):
    data, message = BAD_FILES[case]
    path = write_npz(tmp_path / "bad.npz", **data)
    with pytest.raises(UserError, match=message) as error:
        read_data(path)
    assert str(error.value).startswith(path) and "\n" not in str(error.value)


def test_missing_truncated_foreign_and_folder_inputs(tmp_path):
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(open(MNIST_SMALL, "rb").read()[:5000])
    image = tmp_path / "digit.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    short_idx = tmp_path / "short"
    short_idx.mkdir()
    for name in utils.IDX_FILES.values():
        (short_idx / name).write_bytes(gzip.compress(bytes([0, 0, 8, 3, 0, 0, 0, 9])))
    for path, message in [
        (tmp_path / "absent.npz", "no such file or folder"),
        (truncated, "cannot be read as an .npz|not an .npz archive"),
        (image, "not an .npz archive"),
        (empty, "needs the four IDX files"),
        (short_idx, "truncated"),
    ]:
        with pytest.raises(UserError, match=message):
            read_data(str(path))


def test_training_cli_reports_a_bad_file_in_one_line(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(["--data", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "run")])
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "absent.npz: no such file" in message
    assert "\n" not in message
    assert not os.path.exists(tmp_path / "run" / "model" / utils.GENERATOR_FILE)


def test_the_input_pipeline_splits_global_batches_over_pipelines_and_replicas():
    import tensorflow as tf

    x_train = tf.constant(read_data(MNIST_SMALL)[0][:64])
    whole = [b.numpy() for b in utils.train_dataset(x_train, 16, seed=0, epoch=1)]
    assert len(whole) == 4 and whole[0].shape == (16, 28, 28, 1)
    assert whole[0].min() >= -1 and whole[0].max() <= 1
    # Two pipelines of two replicas: each global batch is cut into four slices of 4, in order.
    parts = [[b.numpy() for b in utils.train_dataset(x_train, 16, 0, 1, 2, p, 2)] for p in (0, 1)]
    for step in range(4):
        pieces = [parts[p][2 * step + r] for p in (0, 1) for r in (0, 1)]
        np.testing.assert_array_equal(np.concatenate(pieces), whole[step])
    again = [b.numpy() for b in utils.train_dataset(x_train, 16, seed=0, epoch=1)]
    other = [b.numpy() for b in utils.train_dataset(x_train, 16, seed=0, epoch=2)]
    np.testing.assert_array_equal(np.stack(again), np.stack(whole))  # (seed, epoch) fix the order
    assert not np.array_equal(np.stack(other), np.stack(whole))


def test_the_input_pipeline_runs_no_autotuning_thread():
    """With tf.data's autotuning on, the end of an epoch's iterator waited for that thread's
    next wake-up (every 60 s once running; epochs of 82-142 s all took 142 s)."""
    import tensorflow as tf

    x_train = tf.constant(read_data(MNIST_SMALL)[0][:64])
    options = utils.train_dataset(x_train, 16, seed=0, epoch=1).options()
    assert options.autotune.enabled is False
    assert options.threading.private_threadpool_size == 1


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "0"], "--epochs must be > 0"),
        (["--beta1", "1.5"], "--beta1 must be in"),
        (["--lambda-cont", "-1"], "--lambda-cont must be >= 0"),
        (["--g-lr", "inf"], "--g-lr must be a finite number"),
        (["--lambda-cont", "nan"], "--lambda-cont must be a finite number"),
        (["--seed", "-5"], "--seed must be in 0 .. 2^31-1"),
        (["--seed", str(2**40)], "--seed must be in 0 .. 2^31-1"),
        (["--lambda-contrastive", "1", "--batch-size", "31"], "needs an even --batch-size"),
        (["--lambda-contrastive", "1", "--strategy", "mirrored"], "use --strategy one"),
        (["--generator-ema", "1"], "--generator-ema must be in [0, 1)"),
    ],
)
def test_bad_options_get_a_clear_error(flags, message):
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(flags)
    assert message in str(exit_info.value.code) and "\n" not in str(exit_info.value.code)


def test_atomic_writes_replace_whole_files_and_clean_up(tmp_path):
    path = tmp_path / "sub" / "result.txt"
    utils.write_text("first", str(path))
    with pytest.raises(RuntimeError), utils.atomic_path(str(path)) as temporary:
        with open(temporary, "w") as handle:
            handle.write("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "first"  # the crash left the old file whole
    assert os.listdir(path.parent) == ["result.txt"]  # and no temporary behind
    assert path.stat().st_mode & 0o044  # readable by others, like any other output


def test_peak_memory_of_a_child_process_is_its_own():
    """benchmark.py reads the peak memory of runs it starts; fork must not lend them its own."""
    import subprocess
    import sys

    ballast = np.ones(400_000_000 // 8)  # about 400 MB resident in this process
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.run([sys.executable, "-c", "import utils; print(utils.peak_rss_mb())"],
                           cwd=here, capture_output=True, text=True, check=True)  # fmt: skip
    assert utils.peak_rss_mb() > 400
    assert float(child.stdout) < 200  # a bare Python with utils: a few tens of MB
    del ballast
