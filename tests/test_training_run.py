import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_RUN

import infogan
from utils import GENERATOR_FILE, load_keras_model

STEPS_PER_EPOCH = 640 // 32  # the small data set of conftest at batch 32


def run_files(out):
    return sorted(
        os.path.relpath(os.path.join(folder, name), out)
        for folder, _, names in os.walk(out)
        for name in names
        if "checkpoints" not in folder
    )


def test_short_run_writes_every_promised_file(trained_run):
    expected = {
        "figures/image_generated_epoch_1.png",
        "figures/image_generated_epoch_2.png",
        "figures/network_losses.png",
        "figures/losses_per_step.csv",
        "figures/losses_per_epoch.csv",
        "model/infogan_model_generator.keras",
        "model/infogan_model_discriminator.keras",
        "model/config.json",
    }
    assert set(run_files(trained_run)) == expected  # and no temporary files left behind
    epochs = pd.read_csv(os.path.join(trained_run, "figures/losses_per_epoch.csv"))
    assert epochs["epoch"].tolist() == [1, 2]
    assert epochs["test_accuracy"].between(0, 1).all()
    for column in (
        "d_loss",
        "g_loss",
        "info_loss",
        "images_per_second",
        "peak_rss_mb",
        "epoch_seconds",
    ):
        assert np.isfinite(epochs[column]).all()
    assert (epochs["peak_rss_mb"] > 100).all()
    assert (epochs["epoch_seconds"] > epochs["seconds"]).all()  # the loop and the outputs after it
    steps = pd.read_csv(os.path.join(trained_run, "figures/losses_per_step.csv"))
    assert steps["step"].tolist() == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    config = json.load(open(os.path.join(trained_run, "model/config.json")))
    assert config["epochs"] == 2 and config["batch_size"] == 32
    assert config["precision_used"] == "mixed_bfloat16"
    # Trained in bf16, saved in float32: the files do not depend on the training precision.
    generator = load_keras_model(os.path.join(trained_run, "model", GENERATOR_FILE), "generator")
    assert {layer.dtype_policy.name for layer in generator.layers} == {"float32"}
    with open(os.path.join(trained_run, "figures/image_generated_epoch_2.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_rerunning_a_finished_run_trains_nothing(trained_run, mnist_file, capsys):
    before = os.path.getmtime(os.path.join(trained_run, "model/infogan_model_generator.keras"))
    infogan.main(["--epochs", "2", "--data", mnist_file, "--out", trained_run, *TINY_RUN])
    assert "already trained 2 epochs" in capsys.readouterr().out
    after = os.path.getmtime(os.path.join(trained_run, "model/infogan_model_generator.keras"))
    assert before == after


class StepSpy:
    """Wraps make_train_step: records every step's batch (as a digest) and seed, and raises
    KeyboardInterrupt on the step's `interrupt_at`-th call."""

    def __init__(self, monkeypatch, interrupt_at=None):
        self.inputs, self.interrupt_at = [], interrupt_at
        original = infogan.make_train_step

        def make(*args, **kwargs):
            step = original(*args, **kwargs)

            def spied(real_images, seed):
                self.inputs.append(
                    (
                        hashlib.sha1(np.asarray(real_images).tobytes()).hexdigest(),
                        np.asarray(seed).tolist(),
                    )
                )
                if len(self.inputs) == self.interrupt_at:
                    raise KeyboardInterrupt
                return step(real_images, seed)

            return spied

        monkeypatch.setattr(infogan, "make_train_step", make)


def epoch_inputs(mnist_file, epoch, seed=0, batch_size=32):
    """What an uninterrupted run feeds its step in `epoch`: batch digests and stateless seeds."""
    import tensorflow as tf

    from utils import load_mnist

    rng = tf.random.Generator.from_seed(seed)
    for _ in range(epoch):
        seeds = rng.make_seeds(STEPS_PER_EPOCH).numpy()
    x_train = tf.constant(load_mnist(mnist_file)[0])
    batches = infogan.epoch_dataset(x_train, batch_size, seed, epoch)
    return [
        (hashlib.sha1(batch.numpy().tobytes()).hexdigest(), seeds[:, step].tolist())
        for step, batch in enumerate(batches)
    ]


def test_interrupted_run_resumes_at_the_right_epoch(tmp_path, mnist_file, trained_run, monkeypatch):
    out = str(tmp_path / "run")
    flags = ["--epochs", "2", "--data", mnist_file, "--out", out, *TINY_RUN]
    with monkeypatch.context() as patch:
        StepSpy(patch, interrupt_at=STEPS_PER_EPOCH + 5)  # Ctrl-C in the middle of epoch 2
        with pytest.raises(SystemExit, match="rerun the same command to resume"):
            infogan.main(flags)
    steps = pd.read_csv(os.path.join(out, "figures/losses_per_step.csv"))
    assert steps["epoch"].max() == 1  # epoch 2 never finished

    with monkeypatch.context() as patch:
        recorder = StepSpy(patch)
        infogan.main(flags)  # the same command again

    assert run_files(out) == run_files(trained_run)
    resumed = pd.read_csv(os.path.join(out, "figures/losses_per_step.csv"))
    uninterrupted = pd.read_csv(os.path.join(trained_run, "figures/losses_per_step.csv"))
    assert resumed["step"].tolist() == uninterrupted["step"].tolist()  # no gap, no repeat
    # After the restore the step gets exactly the batches and latent seeds of an uninterrupted
    # run's epoch 2 (restored RNG state, data order from (seed, epoch)).
    assert recorder.inputs == epoch_inputs(mnist_file, epoch=2)
    # The losses then follow the uninterrupted run's path up to run-to-run round-off, which
    # TensorFlow's multi-threaded CPU kernels make grow over the steps (0.2-1 % within a few
    # steps with the augmented loss), hence only a loose bound here.
    np.testing.assert_allclose(resumed["d_loss"], uninterrupted["d_loss"], rtol=5e-2)
    epochs = pd.read_csv(os.path.join(out, "figures/losses_per_epoch.csv"))
    assert epochs["epoch"].tolist() == [1, 2]


def test_resume_with_other_options_asks_for_fresh(tmp_path, mnist_file):
    out = str(tmp_path / "run")
    flags = ["--data", mnist_file, "--out", out, *TINY_RUN]
    infogan.main(["--epochs", "1", *flags])
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(["--epochs", "2", "--lambda-cat", "0.5", *flags])
    assert "lambda_cat was 1.0, now 0.5" in str(exit_info.value.code)
    assert "--fresh" in str(exit_info.value.code)
    infogan.main(["--epochs", "1", "--lambda-cat", "0.5", "--fresh", *flags])  # starts over
    assert json.load(open(os.path.join(out, "model/config.json")))["lambda_cat"] == 0.5


def test_a_run_from_before_an_option_existed_resumes_as_it_ran(tmp_path, mnist_file):
    out = str(tmp_path / "run")
    # Written as before --noise-scale and --lambda-cat-augmented existed: that run had no
    # augmented loss, which today takes --lambda-cat-augmented 0 (the default is 1).
    flags = ["--data", mnist_file, "--out", out, "--lambda-cat-augmented", "0", *TINY_RUN]
    infogan.main(["--epochs", "1", *flags])
    saved = os.path.join(out, "checkpoints", "config.json")
    older = json.load(open(saved))
    del older["noise_scale"], older["lambda_cat_augmented"]
    json.dump(older, open(saved, "w"))
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(["--epochs", "2", "--noise-scale", "0.5", *flags])
    assert "noise_scale was 1.0, now 0.5" in str(exit_info.value.code)
    plain = [f for f in flags if f not in ("--lambda-cat-augmented", "0")]
    with pytest.raises(SystemExit) as exit_info:  # the default would switch the new loss on
        infogan.main(["--epochs", "2", *plain])
    assert "lambda_cat_augmented was 0.0, now 1.0" in str(exit_info.value.code)
    infogan.main(["--epochs", "2", *flags])
    epochs = pd.read_csv(os.path.join(out, "figures/losses_per_epoch.csv"))
    assert epochs["epoch"].tolist() == [1, 2]


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_models(
    tmp_path, mnist_file, monkeypatch
):
    out = str(tmp_path / "run")
    flags = ["--data", mnist_file, "--out", out, *TINY_RUN]
    infogan.main(["--epochs", "1", *flags])
    model_path = os.path.join(out, "model/infogan_model_generator.keras")
    good = open(model_path, "rb").read()

    original = infogan.make_train_step

    def poisoned(*args, **kwargs):
        step = original(*args, **kwargs)

        def nan_step(*step_args):
            return {**step(*step_args), "g_loss": float("nan")}

        return nan_step

    monkeypatch.setattr(infogan, "make_train_step", poisoned)
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(["--epochs", "2", *flags])
    message = str(exit_info.value.code)
    assert "epoch 2 step 1" in message and "last good checkpoint (epoch 1)" in message
    assert open(model_path, "rb").read() == good
    assert not os.path.exists(os.path.join(out, "figures/image_generated_epoch_2.png"))
