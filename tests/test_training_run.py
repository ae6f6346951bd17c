import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import STEPS_PER_EPOCH, TINY_RUN

import infogan
from model import build_generator
from utils import GENERATOR_FILE, load_generator, step_seeds


def run_files(out):
    return sorted(
        os.path.relpath(os.path.join(folder, name), out)
        for folder, _, names in os.walk(out)
        for name in names
        if "checkpoints" not in folder and "logs" not in folder
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
        ".infogan.lock",
    }
    assert set(run_files(trained_run)) == expected  # and no temporary files left behind
    epochs = pd.read_csv(os.path.join(trained_run, "figures/losses_per_epoch.csv"))
    assert epochs["epoch"].tolist() == [1, 2]
    assert epochs["test_accuracy"].between(0, 1).all()
    for column in ("d_loss", "g_loss", "info_loss", "images_per_second", "peak_rss_mb"):
        assert np.isfinite(epochs[column]).all()
    assert (epochs["peak_rss_mb"] > 100).all()
    assert (epochs["epoch_seconds"] > epochs["seconds"]).all()  # the loop and the outputs after it
    steps = pd.read_csv(os.path.join(trained_run, "figures/losses_per_step.csv"))
    assert steps["step"].tolist() == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    config = json.load(open(os.path.join(trained_run, "model/config.json")))
    assert config["epochs"] == 2 and config["batch_size"] == 32 and config["preset"] == "ours"
    assert config["precision_used"] == "mixed_bfloat16" and config["dataset"] == "mnist"
    # Trained in bf16, saved in float32: the files do not depend on the training precision.
    generator = load_generator(os.path.join(trained_run, "model", GENERATOR_FILE))
    assert {layer.dtype_policy.name for layer in generator.layers} == {"float32"}
    checkpoints = sorted(os.listdir(os.path.join(trained_run, "checkpoints")))
    assert checkpoints == ["ckpt-1.data-00000-of-00001", "ckpt-1.index",
                           "ckpt-2.data-00000-of-00001", "ckpt-2.index", "config.json"]  # fmt: skip


def test_tensorboard_events_hold_losses_per_step_accuracy_and_grids(trained_run):
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    events = event_accumulator.EventAccumulator(
        os.path.join(trained_run, "logs"), size_guidance={"tensors": 0}
    )
    events.Reload()
    tags = events.Tags()["tensors"]
    steps = pd.read_csv(os.path.join(trained_run, "figures/losses_per_step.csv"))
    for name in infogan.loss_names(infogan.Config()):
        logged = events.Tensors(f"loss/{name}")
        assert [e.step for e in logged] == steps["step"].tolist()
        values = [float(tf.make_ndarray(e.tensor_proto)) for e in logged]
        np.testing.assert_allclose(values, steps[name], rtol=1e-6)
    accuracy = events.Tensors("test_accuracy")
    epochs = pd.read_csv(os.path.join(trained_run, "figures/losses_per_epoch.csv"))
    assert [e.step for e in accuracy] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    np.testing.assert_allclose(
        [float(tf.make_ndarray(e.tensor_proto)) for e in accuracy],
        epochs["test_accuracy"],
        rtol=1e-6,
    )
    assert "samples" in tags and len(events.Tensors("samples")) == 2


def test_rerunning_a_finished_run_trains_nothing_and_keeps_its_config(trained_run, capsys):
    model = os.path.join(trained_run, "model", GENERATOR_FILE)
    config = os.path.join(trained_run, "model", "config.json")
    before = os.path.getmtime(model), open(config).read()
    infogan.main(["--epochs", "1", "--out", trained_run, *TINY_RUN])  # fewer epochs than done
    assert "already trained 2 epochs" in capsys.readouterr().out
    assert (os.path.getmtime(model), open(config).read()) == before


class StepSpy:
    """Wraps make_train_step and dataset_iterator: records the seed of every step and the epoch
    of every iterator; raises KeyboardInterrupt at step `interrupt_at`, or with `poison` makes
    that step's g_loss NaN."""

    def __init__(self, monkeypatch, interrupt_at=None, poison=False):
        self.seeds, self.epochs = [], []
        make_step, make_iterator = infogan.make_train_step, infogan.dataset_iterator

        def make(*args, **kwargs):
            step = make_step(*args, **kwargs)

            def spied(batch, seed):
                self.seeds.append(np.asarray(seed).tolist())
                if len(self.seeds) == interrupt_at:
                    if not poison:
                        raise KeyboardInterrupt
                    return {**step(batch, seed), "g_loss": float("nan")}
                return step(batch, seed)

            return spied

        def iterator(strategy, x_train, config, epoch):
            self.epochs.append(epoch)
            return make_iterator(strategy, x_train, config, epoch)

        monkeypatch.setattr(infogan, "make_train_step", make)
        monkeypatch.setattr(infogan, "dataset_iterator", iterator)


def test_interrupted_run_resumes_at_the_right_epoch(tmp_path, trained_run, monkeypatch):
    out = str(tmp_path / "run")
    flags = ["--epochs", "2", "--out", out, *TINY_RUN]
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
    # After the restore the steps get epoch 2's data order and latent seeds, as an
    # uninterrupted run does (both are functions of (seed, epoch) alone).
    assert recorder.epochs == [2]
    assert recorder.seeds == step_seeds(0, 2, STEPS_PER_EPOCH).tolist()
    # The losses then follow the uninterrupted run's path up to run-to-run round-off, which
    # TensorFlow's multi-threaded CPU kernels make grow over the steps, hence a loose bound.
    np.testing.assert_allclose(resumed["d_loss"], uninterrupted["d_loss"], rtol=5e-2)
    epochs = pd.read_csv(os.path.join(out, "figures/losses_per_epoch.csv"))
    assert epochs["epoch"].tolist() == [1, 2]


def test_a_run_checkpoints_the_pair_discriminator_and_generator_average_and_resumes(tmp_path):
    # One run for both optional states; a fast average (0.9) so it moves off G in 20 steps.
    out = str(tmp_path / "run")
    flags = ["--out", out, "--lambda-contrastive", "2", "--generator-ema", "0.9", *TINY_RUN]
    infogan.main(["--epochs", "1", *flags])
    checkpoint = os.path.join(out, "checkpoints", "ckpt-1")
    variables = tf.train.list_variables(checkpoint)
    assert [4, 4, 2, 32] in [shape for _, shape in variables]  # the pair discriminator's conv
    assert any(name.startswith("pair_optimizer/") for name, _ in variables)
    infogan.main(["--epochs", "2", *flags])  # restores all of it, or stops with an error
    steps = pd.read_csv(os.path.join(out, "figures/losses_per_step.csv"))
    assert steps["epoch"].tolist() == [1] * STEPS_PER_EPOCH + [2] * STEPS_PER_EPOCH
    assert steps["contrastive_nll"].between(0, 5).all()
    trained, average = build_generator(), build_generator()
    checkpoint = tf.train.Checkpoint(generator=trained, generator_ema=average)
    checkpoint.read(os.path.join(out, "checkpoints", "ckpt-2")).expect_partial()
    kernel = trained.get_layer("g_fc1").kernel  # (74, 1024)
    assert not np.allclose(kernel, average.get_layer("g_fc1").kernel)
    saved = load_generator(os.path.join(out, "model", GENERATOR_FILE))
    for layer in ("g_fc1", "g_deconv1"):  # the saved generator is the average
        np.testing.assert_array_equal(
            saved.get_layer(layer).kernel, average.get_layer(layer).kernel
        )
    # with batch-norm statistics measured for it: neither G's nor a fresh layer's (zero mean)
    statistics = saved.get_layer("g_bn1").moving_mean
    assert not np.allclose(statistics, trained.get_layer("g_bn1").moving_mean)
    assert not np.allclose(statistics, 0.0)


def test_resume_with_other_options_asks_for_fresh(tmp_path, trained_run):
    out = str(tmp_path / "run")
    shutil.copytree(trained_run, out)
    flags = ["--out", out, *TINY_RUN]
    with pytest.raises(SystemExit) as exit_info:
        infogan.main(["--epochs", "2", "--lambda-cat", "0.5", *flags])
    assert "lambda_cat was 1.0, now 0.5" in str(exit_info.value.code)
    assert "--fresh" in str(exit_info.value.code)
    # An option that did not exist when the run started counts as the value that reproduces
    # that run, not today's default (the augmented loss would switch on mid-run).
    saved = os.path.join(out, "checkpoints", "config.json")
    older = json.load(open(saved))
    del older["lambda_cat_augmented"]
    json.dump({**older, "noise_scale": 1.0}, open(saved, "w"))
    with pytest.raises(SystemExit, match="lambda_cat_augmented was 0.0, now 1.0"):
        infogan.main(["--epochs", "2", *flags])
    json.dump({**older, "noise_scale": 0.5}, open(saved, "w"))  # an option removed since
    with pytest.raises(SystemExit, match="noise_scale=0.5, an option this version no longer"):
        infogan.main(["--epochs", "2", "--lambda-cat-augmented", "0", *flags])
    infogan.main(["--epochs", "1", "--lambda-cat", "0.5", "--fresh", *flags])  # starts over
    assert json.load(open(os.path.join(out, "model/config.json")))["lambda_cat"] == 0.5


def test_presets_set_defaults_and_flags_override_them():
    paper = infogan.parse_config(["--preset", "paper"])
    assert paper.preset == "paper" and paper.epochs == 11
    assert paper.lambda_cat_augmented == paper.generator_ema == 0.0
    assert paper.discriminator_statistics == "training"
    assert infogan.parse_config(["--preset", "paper", "--epochs", "3"]).epochs == 3
    ours = infogan.parse_config([])
    assert (ours.lambda_cat_augmented, ours.epochs, ours.out) == (1.0, 20, "runs/mnist_seed0")
    assert ours.generator_ema == 0.99
    assert infogan.parse_config(["--dataset", "fashion_mnist", "--seed", "4"]).out == (
        "runs/fashion_mnist_seed4"
    )


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_models(
    tmp_path, trained_run, monkeypatch
):
    with monkeypatch.context() as patch:
        StepSpy(patch, interrupt_at=3, poison=True)
        with pytest.raises(SystemExit, match="No epoch had completed, so nothing was saved"):
            infogan.main(["--epochs", "1", "--out", str(tmp_path / "new"), *TINY_RUN])
    out = str(tmp_path / "run")
    shutil.copytree(trained_run, out)
    model_path = os.path.join(out, "model", GENERATOR_FILE)
    good = open(model_path, "rb").read()
    with monkeypatch.context() as patch:
        StepSpy(patch, interrupt_at=2, poison=True)
        with pytest.raises(SystemExit) as exit_info:
            infogan.main(["--epochs", "3", "--out", out, *TINY_RUN])
    message = str(exit_info.value.code)
    assert "g_loss became nan at epoch 3 step 2" in message
    assert "checkpoint and models of epoch 2 are kept" in message
    assert open(model_path, "rb").read() == good
    assert not os.path.exists(os.path.join(out, "figures/image_generated_epoch_3.png"))
