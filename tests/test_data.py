import os
from unittest import mock

import numpy as np
import pytest
from conftest import small_mnist

import infogan
import utils
from utils import UserError, load_mnist, read_mnist_npz


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_reads_a_valid_file(mnist_file):
    x_train, y_train, x_test, y_test = read_mnist_npz(mnist_file)
    assert x_train.shape == (640, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (640,) and x_test.shape == (200, 28, 28) and y_test.shape == (200,)


def test_explicit_path_wins_over_the_cache(mnist_file, monkeypatch):
    monkeypatch.setattr(utils, "KERAS_CACHE_MNIST", "/nonexistent/mnist.npz")
    assert load_mnist(mnist_file)[0].shape == (640, 28, 28)


def test_reads_the_keras_cache_when_no_path(mnist_file, monkeypatch):
    monkeypatch.setattr(utils, "KERAS_CACHE_MNIST", mnist_file)
    assert load_mnist()[0].shape == (640, 28, 28)


def test_offline_without_a_file_says_how_to_pass_one(monkeypatch, tmp_path):
    import keras

    def offline():
        raise OSError("Name or service not known")

    monkeypatch.setattr(utils, "KERAS_CACHE_MNIST", str(tmp_path / "none.npz"))
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(UserError, match="could not be downloaded.*--data PATH"):
        load_mnist()


def valid():
    return small_mnist(train=20, test=10)


def without(name):
    arrays = valid()
    del arrays[name]
    return arrays


def replaced(name, value):
    arrays = valid()
    arrays[name] = value
    return arrays


BAD_FILES = {
    "missing arrays": (without("y_test"), "missing arrays \\['y_test'\\]"),
    "wrong shape": (
        replaced("x_train", np.zeros((20, 32, 32), np.uint8)),
        "shape \\(20, 32, 32\\)",
    ),
    "flat images": (replaced("x_test", np.zeros((10, 784), np.uint8)), "expected \\(N, 28, 28\\)"),
    "wrong dtype": (replaced("x_train", np.zeros((20, 28, 28), np.float64)), "dtype float64"),
    "label count": (replaced("y_train", np.zeros(19, np.uint8)), "20 images but y_train has 19"),
    "label range": (replaced("y_test", np.full(10, 12, np.uint8)), "label 12"),
    "pickled objects": (replaced("y_test", np.array([object()] * 10)), "cannot be read"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_arrays_get_a_clear_error_naming_the_file(tmp_path, case):
    arrays, message = BAD_FILES[case]
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=message) as error:
        read_mnist_npz(path)
    assert str(error.value).startswith(path)


def test_missing_truncated_and_foreign_files(tmp_path, mnist_file):
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(open(mnist_file, "rb").read()[:5000])
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    for path, message in [
        (tmp_path / "absent.npz", "no such file"),
        (truncated, "cannot be read as an .npz"),
        (text, "cannot be read as an .npz"),
    ]:
        with pytest.raises(UserError, match=message):
            read_mnist_npz(str(path))


def test_training_cli_reports_a_bad_file_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(["--data", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "run")])
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "absent.npz: no such file" in message
    assert "\n" not in message
    assert not (tmp_path / "run" / "model" / "infogan_model_generator.keras").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "0"], "--epochs must be > 0"),
        (["--beta1", "1.5"], "--beta1 must be in"),
        (["--lambda-cont", "-1"], "--lambda-cont must be >= 0"),
        (["--continuous-std", "wide"], "'learned' or 'fixed'"),
    ],
)
def test_bad_options_get_a_clear_error(flags, message):
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(flags)
    assert message in str(exit_info.value.code)


def test_atomic_writes_replace_whole_files_and_clean_up(tmp_path):
    path = tmp_path / "sub" / "result.txt"
    with utils.atomic_path(str(path)) as temporary, open(temporary, "w") as handle:
        handle.write("first")
    with pytest.raises(RuntimeError), utils.atomic_path(str(path)) as temporary:
        with open(temporary, "w") as handle:
            handle.write("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "first"  # the crash left the old file whole
    assert os.listdir(path.parent) == ["result.txt"]  # and no temporary behind
    assert path.stat().st_mode & 0o044  # readable by others, like any other output


def test_save_model_streams_the_weights_through_a_file_and_round_trips(tmp_path):
    """save_model keeps Keras from building the weights' HDF5 file in memory (the weights held
    twice at the epoch's memory peak): every weights store it opens is a file, not an in-memory
    archive member, and the saved model loads back with the same weights and nothing left over."""
    import keras
    from keras.src.saving import saving_lib

    archives = []

    class RecordingStore(saving_lib.H5IOStore):
        def __init__(self, *args, **kwargs):
            archives.append(kwargs.get("archive"))
            super().__init__(*args, **kwargs)

    generator = infogan.build_generator()
    path = tmp_path / "model" / "g.keras"
    with mock.patch.object(saving_lib, "H5IOStore", RecordingStore):
        infogan.save_model(generator, str(path))
    assert archives and all(archive is None for archive in archives)
    loaded = keras.saving.load_model(str(path))
    for a, b in zip(loaded.weights, generator.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert os.listdir(path.parent) == ["g.keras"]
