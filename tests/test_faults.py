"""Faults done for real on a tiny run: kills, damaged checkpoints, two runs on one folder, a
folder that cannot be written, a full disk. Each test checks that the newest completed epoch
survives and the models load."""

import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import ROOT, TINY_RUN

import infogan
import utils
from utils import GENERATOR_FILE, load_discriminator, load_generator


def command(out, epochs):
    return [sys.executable, os.path.join(ROOT, "infogan.py"), "--epochs", str(epochs),
            "--out", str(out), *TINY_RUN]  # fmt: skip


def start(out, epochs):
    return subprocess.Popen(command(out, epochs), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def wait_for(path_pattern, process, timeout=300):
    deadline = time.monotonic() + timeout
    while not glob.glob(path_pattern):
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, f"no {path_pattern} after {timeout} s"
        time.sleep(0.05)


def completed_epoch(out):
    """The newest complete checkpoint, after checking that the saved models load."""
    numbers = infogan.checkpoint_numbers(os.path.join(out, "checkpoints"))
    load_generator(str(out))
    load_discriminator(str(out))
    return numbers[0] if numbers else 0


def leftovers(out):
    return [p for p in glob.glob(os.path.join(out, "**", "*"), recursive=True)
            if ".tmp" in p or "_temp" in p or ".partial-" in p]  # fmt: skip


@pytest.mark.slow
def test_sigkill_at_random_moments_of_the_epoch_end_never_loses_a_completed_epoch(tmp_path):
    out, epochs, rng = tmp_path / "run", 4, random.Random(0)  # room for a late kill
    done = 0
    for _ in range(2):  # kill, check, restart: the same command each time
        process = start(out, epochs)
        wait_for(os.path.join(out, "checkpoints", f"ckpt-{done + 1}.index"), process)
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere in the next epochs' outputs
        process.kill()
        process.wait()
        now = completed_epoch(out)
        assert now > done  # never fewer completed epochs than before the kill
        done = now
    result = subprocess.run(command(out, epochs), cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = pd.read_csv(os.path.join(out, "figures", "losses_per_step.csv"))
    assert steps["step"].tolist() == list(range(1, epochs * 10 + 1))  # each step exactly once
    assert completed_epoch(out) == epochs and not leftovers(out)


def test_an_epochs_loss_rows_are_on_disk_before_its_checkpoint(tmp_path, monkeypatch):
    out, seen = tmp_path / "run", []
    write_checkpoint = infogan.write_checkpoint

    def checking(checkpoint, folder, epoch, keep):  # a kill right after it keeps the rows
        seen.append(pd.read_csv(out / "figures" / "losses_per_epoch.csv")["epoch"].tolist())
        return write_checkpoint(checkpoint, folder, epoch, keep)

    monkeypatch.setattr(infogan, "write_checkpoint", checking)
    infogan.main(["--epochs", "2", "--out", str(out), *TINY_RUN])
    assert seen == [[1], [1, 2]]


@pytest.mark.slow
def test_a_second_run_is_refused_sigterm_stops_cleanly_and_the_lock_does_not_outlive_it(tmp_path):
    out = tmp_path / "run"
    process = start(out, 30)
    wait_for(os.path.join(out, "checkpoints", "ckpt-1.index"), process)
    for extra in ([], ["--fresh"]):
        with pytest.raises(SystemExit) as exit_info:
            infogan.main(["--epochs", "30", "--out", str(out), *TINY_RUN, *extra])
        message = str(exit_info.value.code)
        assert f"pid {process.pid}" in message and "is training in this folder" in message
        assert infogan.checkpoint_numbers(os.path.join(out, "checkpoints"))  # nothing deleted
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=180)[0]
    assert process.returncode == 1
    assert output.strip().splitlines()[-1].startswith("interrupted; rerun the same command")
    done = completed_epoch(out)  # the lock file is still there, its lock gone with the process
    infogan.main(["--epochs", str(done + 1), "--out", str(out), *TINY_RUN])
    assert completed_epoch(out) == done + 1


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A copy of the 2-epoch run (checkpoints of epochs 1 and 2) to damage."""
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


def checkpoint_file(out, number, kind):
    return glob.glob(os.path.join(out, "checkpoints", f"ckpt-{number}.{kind}*"))[0]


@pytest.mark.parametrize("damage", ["truncate data", "garbage index"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(run_copy, damage, capsys):
    data, index = checkpoint_file(run_copy, 2, "data"), checkpoint_file(run_copy, 2, "index")
    if damage == "truncate data":
        with open(data, "r+b") as handle:
            handle.truncate(os.path.getsize(data) // 2)
    else:
        open(index, "wb").write(b"not an sstable" * 10)
    infogan.main(["--epochs", "2", "--out", str(run_copy), *TINY_RUN])  # epoch 2 again
    output = capsys.readouterr().out
    assert "ckpt-2 cannot be read" in output and "resuming from" in output
    assert "after epoch 1" in output
    assert completed_epoch(run_copy) == 2
    epochs = pd.read_csv(os.path.join(run_copy, "figures", "losses_per_epoch.csv"))
    assert epochs["epoch"].tolist() == [1, 2]


def test_no_readable_checkpoint_is_one_line_and_deletes_nothing(run_copy):
    for number in (1, 2):
        open(checkpoint_file(run_copy, number, "index"), "wb").write(b"garbage")
    before = sorted(os.listdir(os.path.join(run_copy, "checkpoints")))
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(["--epochs", "3", "--out", str(run_copy), *TINY_RUN])
    message = str(exit_info.value.code)
    assert "ckpt-2 cannot be read" in message and "--fresh" in message and "\n" not in message
    assert sorted(os.listdir(os.path.join(run_copy, "checkpoints"))) == before


@pytest.mark.parametrize("content", [None, "{ not json", "[1, 2]"])
def test_a_missing_or_damaged_run_config_is_one_line(run_copy, content):
    path = os.path.join(run_copy, "checkpoints", "config.json")
    if content is None:
        os.remove(path)
    else:
        open(path, "w").write(content)
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(["--epochs", "3", "--out", str(run_copy), *TINY_RUN])
    message = str(exit_info.value.code)
    assert message.startswith(f"error: {path}") and "\n" not in message
    assert infogan.checkpoint_numbers(os.path.join(run_copy, "checkpoints")) == [2, 1]


def test_leftovers_are_removed_and_a_lost_loss_csv_is_said_at_the_next_start(run_copy, capsys):
    leftover = [
        os.path.join(run_copy, "model", ".infogan_model_generator.x1.tmp.keras"),
        os.path.join(run_copy, "checkpoints", "ckpt-3_temp", "part-00000"),
        os.path.join(run_copy, "checkpoints", ".partial-3", "ckpt-3.index"),
        os.path.join(run_copy, "checkpoints", "checkpoint.tmp1234"),
    ]
    for path in leftover:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").write("half")
    os.remove(os.path.join(run_copy, "figures", "losses_per_step.csv"))
    infogan.main(["--epochs", "3", "--out", str(run_copy), *TINY_RUN])
    output = capsys.readouterr().out
    assert "removed 4 leftovers of an interrupted write" in output
    assert "losses_per_step.csv lacks epochs 1..2" in output
    assert not leftovers(run_copy)


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    long_name = tmp_path / ("x" * 300)
    for out in (blocker / "run", long_name):
        with pytest.raises(SystemExit) as exit_info:
            infogan.main(["--out", str(out), *TINY_RUN])
        message = str(exit_info.value.code)
        assert message.startswith("error: ") and "choose another --out" in message
        assert "\n" not in message


def test_a_full_disk_stops_before_the_epoch_or_mid_write_keeping_the_last_epoch(
    run_copy, monkeypatch
):
    good = open(os.path.join(run_copy, "model", GENERATOR_FILE), "rb").read()
    usage = shutil.disk_usage(run_copy)
    with monkeypatch.context() as patch:
        patch.setattr(utils.shutil, "disk_usage", lambda path: usage._replace(free=20_000_000))
        with pytest.raises(SystemExit) as exit_info:
            infogan.main(["--epochs", "3", "--out", str(run_copy), *TINY_RUN])
    assert "20 MB free" in str(exit_info.value.code) and "rerun the same command" in str(
        exit_info.value.code
    )

    def full(model, path):  # the disk fills while a model is being written
        with utils.atomic_path(path) as temporary:
            open(temporary, "wb").write(b"half a model")
            raise OSError(28, "No space left on device", temporary)

    with monkeypatch.context() as patch:
        patch.setattr(infogan, "save_model", full)
        with pytest.raises(SystemExit) as exit_info:
            infogan.main(["--epochs", "3", "--out", str(run_copy), *TINY_RUN])
    message = str(exit_info.value.code)
    assert "No space left on device" in message and "\n" not in message
    assert open(os.path.join(run_copy, "model", GENERATOR_FILE), "rb").read() == good
    assert completed_epoch(run_copy) == 2 and not leftovers(run_copy)


def test_a_training_set_smaller_than_a_batch_is_one_line_before_any_training(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(["--out", str(tmp_path / "run"), *TINY_RUN, "--batch-size", "5000"])
    assert "fewer than one batch of 5000" in str(exit_info.value.code)
    assert not os.path.exists(tmp_path / "run" / "model" / GENERATOR_FILE)


def test_evaluate_with_swapped_models_is_one_line(run_copy, tmp_path):
    import evaluate

    model = os.path.join(run_copy, "model")
    os.rename(os.path.join(model, GENERATOR_FILE), os.path.join(model, "g"))
    os.rename(os.path.join(model, utils.DISCRIMINATOR_FILE), os.path.join(model, GENERATOR_FILE))
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--model-dir", str(run_copy), "--out", str(tmp_path / "report")])
    assert "expected an InfoGAN generator" in str(exit_info.value.code)
    assert not os.path.exists(tmp_path / "report")
