"""Train InfoGAN on MNIST.

    python infogan.py                          # published defaults, resumes if interrupted
    python infogan.py --data ~/mnist.npz       # offline: a local Keras-layout mnist.npz
    python infogan.py --epochs 3 --out runs/try  # a scratch run in its own folder
    python infogan.py --fresh                  # discard the checkpoints and start over

Writes (under --out, default the repo root): figures/image_generated_epoch_<N>.png,
figures/network_losses.png, figures/losses_per_step.csv, figures/losses_per_epoch.csv,
model/infogan_model_generator.keras, model/infogan_model_discriminator.keras (body + D + Q heads),
model/config.json, and checkpoints/ for resuming.
"""

import argparse
import contextlib
import dataclasses
import gc
import glob
import json
import math
import os
import sys
import time
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras.src.saving import saving_lib

from model import build_discriminator, build_generator
from utils import (
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    PRECISIONS,
    UserError,
    atomic_path,
    category_grid_latent,
    cluster_accuracy,
    image_grid,
    join_latent,
    load_mnist,
    peak_rss_mb,
    predict_codes,
    random_affine,
    resolve_precision,
    sample_latent,
    save_png,
)

# Options that may change between an interrupted run and its resumption.
RESUMABLE_OPTIONS = {"epochs", "fresh", "data", "out", "progress"}
# Options added after runs existed, with the value that reproduces a run made before each (a
# checkpoint's config.json lacks them). Not always the default: lambda_cat_augmented is 1 now.
BEFORE_OPTION_EXISTED = {"precision": "float32", "noise_scale": 1.0, "lambda_cat_augmented": 0.0}


@dataclasses.dataclass
class Config:
    epochs: int = 15  # passes over the 60k training images (468 steps each at batch 128)
    batch_size: int = 128  # real images per step (and as many fakes)
    g_lr: float = 1e-3  # Adam learning rate of G
    d_lr: float = 2e-4  # Adam learning rate of the discriminator body, D head and Q head
    beta1: float = 0.5  # Adam beta1 (both optimizers)
    beta2: float = 0.999  # Adam beta2 (both optimizers)
    lambda_cat: float = 1.0  # weight of the categorical info loss
    lambda_cont: float = 1.0  # weight of the Gaussian info loss of c1, c2
    lambda_cat_augmented: float = 1.0  # weight of the categorical info loss on moved fakes; 0: off
    continuous_std: str = "fixed"  # "fixed": std 1 (official code); "learned": Q's log-std
    noise_scale: float = 1.0  # G multiplies its noise input by this (model.ScaleNoise)
    precision: str = "auto"  # float32, mixed_bfloat16, or auto: bf16 where the hardware has it
    seed: int = 0  # weights, latents and data order
    data: str = ""  # Keras-layout mnist.npz; empty: Keras cache, then download
    out: str = "."  # run folder holding figures/, model/, checkpoints/
    fresh: bool = False  # ignore and delete existing checkpoints of this run folder
    keep_checkpoints: int = 3  # how many epoch checkpoints to keep
    grid_columns: int = 10  # noise draws per row of the per-epoch grid
    progress: bool = True  # per-step progress bar when stdout is a terminal


def parse_config(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    comments = _field_comments()
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{comments.get(field.name, '')} (default: {field.default!r})"
        if field.type is bool or field.type == "bool":
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=field.default,
                help=help_text,
            )
        else:
            kind = {"int": int, "float": float, "str": str}[
                getattr(field.type, "__name__", field.type)
            ]
            parser.add_argument(flag, type=kind, default=field.default, help=help_text)
    config = Config(**vars(parser.parse_args(argv)))
    validate_config(config)
    return config


def _field_comments():
    """The trailing comment of each Config field, reused as its --help text."""
    import inspect

    comments = {}
    for line in inspect.getsource(Config).splitlines():
        name, _, rest = line.strip().partition(":")
        if "#" in rest:
            comments[name] = rest.split("#", 1)[1].strip()
    return comments


def validate_config(config):
    positive = [
        "epochs",
        "batch_size",
        "g_lr",
        "d_lr",
        "noise_scale",
        "keep_checkpoints",
        "grid_columns",
    ]
    for name in positive:
        if not getattr(config, name) > 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0, got {getattr(config, name)}")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(config, name) < 1:
            raise UserError(f"--{name} must be in [0, 1), got {getattr(config, name)}")
    for name in ("lambda_cat", "lambda_cont", "lambda_cat_augmented"):
        if getattr(config, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(config, name)}")
    if config.precision not in PRECISIONS:
        raise UserError(
            f"--precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}"
        )
    if config.continuous_std not in ("learned", "fixed"):
        raise UserError(
            f"--continuous-std must be 'learned' or 'fixed', got {config.continuous_std!r}"
        )


# -------------------------------------------------------------------------------------- losses


def discriminator_gan_loss(real_logit, fake_logit):
    """-log D(x) - log(1 - D(G(z))), from logits."""
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    return bce(tf.ones_like(real_logit), real_logit) + bce(tf.zeros_like(fake_logit), fake_logit)


def generator_gan_loss(fake_logit):
    """Non-saturating: -log D(G(z)), from logits."""
    return keras.losses.BinaryCrossentropy(from_logits=True)(tf.ones_like(fake_logit), fake_logit)


def categorical_nll_of(categorical_code, categorical_logits):
    """Cross-entropy of Q's logits (B, 10) against the one-hot code (B, 10), batch mean."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.argmax(categorical_code, axis=-1), logits=categorical_logits
        )
    )


def normal_log_prob(x, mean, scale):
    """log N(x; mean, scale^2), elementwise, computed as TFP's Normal.log_prob computes it (the
    tests compare the two); the training process does not import TFP, which loads tf_keras."""
    log_unnormalized = -0.5 * tf.math.squared_difference(x / scale, mean / scale)
    return log_unnormalized - (0.5 * math.log(2.0 * math.pi) + tf.math.log(scale))


def info_loss(categorical_code, continuous_codes, categorical_logits, mean, log_std, config):
    """L_I = lambda_cat * CE(c_cat, Q) + lambda_cont * Gaussian NLL(c1, c2 | Q), batch means.

    Returns (total, categorical_nll, continuous_nll). The continuous NLL sums over c1 and c2,
    each with its own mean and std.
    """
    categorical_nll = categorical_nll_of(categorical_code, categorical_logits)
    if config.continuous_std == "fixed":
        log_std = tf.zeros_like(mean)
    # A clip keeps exp(-2 log_std) finite while Q's first guesses are poor.
    scale = tf.exp(tf.clip_by_value(log_std, -5.0, 2.0))
    continuous_nll = -tf.reduce_mean(
        tf.reduce_sum(normal_log_prob(continuous_codes, mean, scale), axis=-1)
    )
    total = config.lambda_cat * categorical_nll + config.lambda_cont * continuous_nll
    return total, categorical_nll, continuous_nll


# ---------------------------------------------------------------------------------- train step


def make_train_step(generator, discriminator, g_optimizer, d_optimizer, config, compile=True):
    """One simultaneous update of G and of the discriminator (body, D head, Q head), as in the
    official InfoGAN code: both gradients come from the same fakes.

    Returns train_step(real_images, seed) -> dict of losses; compile=False gives the same step
    run eagerly (the tests compare the two). Not XLA-compiled: on CPU it was no faster, and its
    gradients through the discriminator's later kernels differed from eager by 1-3% after one
    step (weight updates racing the gradient reads)."""
    g_variables = generator.trainable_variables
    d_variables = [  # shared body + D head + Q head (less the log-std output when it is unused)
        v
        for v in discriminator.trainable_variables
        if config.continuous_std == "learned" or "continuous_log_std" not in v.path
    ]

    def train_step(real_images, seed):
        # real_images (B, 28, 28, 1) in [-1, 1]; seed (2,) int: a stateless seed for the latents.
        batch_size = tf.shape(real_images)[0]
        categorical_code, continuous_codes, noise = sample_latent(batch_size, seed)
        with tf.GradientTape(persistent=True) as tape:
            fake_images = generator(
                join_latent(categorical_code, continuous_codes, noise), training=True
            )
            # Under mixed_bfloat16 the networks compute in bf16; the losses are taken in float32.
            real_logit = tf.cast(discriminator(real_images, training=True)[0], tf.float32)
            fake_logit, categorical_logits, mean, log_std = [
                tf.cast(output, tf.float32) for output in discriminator(fake_images, training=True)
            ]
            d_gan = discriminator_gan_loss(real_logit, fake_logit)
            g_gan = generator_gan_loss(fake_logit)
            info, categorical_nll, continuous_nll = info_loss(
                categorical_code, continuous_codes, categorical_logits, mean, log_std, config
            )
            extra = {}
            if config.lambda_cat_augmented:
                # Q must also read the 10-way code from the fakes rotated, stretched and shifted
                # (a third discriminator pass), so G cannot carry it in slant or width alone.
                augmented_logits = tf.cast(
                    discriminator(random_affine(fake_images, seed), training=True)[1], tf.float32
                )
                extra["augmented_categorical_nll"] = categorical_nll_of(
                    categorical_code, augmented_logits
                )
                info += config.lambda_cat_augmented * extra["augmented_categorical_nll"]
            # Who learns from what: d_loss updates the shared body, D head and Q head, so the info
            # loss trains Q AND the body it shares with D; g_loss updates G only, so G learns to
            # fool D and to make its codes readable by Q.
            d_loss = d_gan + info
            g_loss = g_gan + info
        d_gradients = tape.gradient(d_loss, d_variables)
        g_gradients = tape.gradient(g_loss, g_variables)
        d_optimizer.apply_gradients(zip(d_gradients, d_variables, strict=True))
        g_optimizer.apply_gradients(zip(g_gradients, g_variables, strict=True))
        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "info_loss": info,
            "categorical_nll": categorical_nll,
            "continuous_nll": continuous_nll,
            **extra,
        }

    return tf.function(train_step, reduce_retracing=True) if compile else train_step


def training_precision(requested):
    """The dtype policy that --precision resolves to on this machine (see utils)."""
    capabilities = [
        tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    return resolve_precision(requested, capabilities)


def build_models(precision, noise_scale=1.0):
    """G and the discriminator with their layers computing in `precision` (a Keras dtype policy).
    The variables are float32 under every policy, so weights move freely between precisions."""
    keras.mixed_precision.set_global_policy(precision)
    try:
        return build_generator(noise_scale=noise_scale), build_discriminator()
    finally:
        keras.mixed_precision.set_global_policy("float32")


@contextlib.contextmanager
def computing_in(precision, *models):
    """Inside the block every layer of `models` computes in `precision`; afterwards, as before.

    The per-epoch test readout, sample grid and saved models use float32 this way, reading the
    training variables themselves (float32 under every policy), so numbers and files do not
    depend on the training precision. A float32 copy of both networks would hold another 53 MB
    for the whole run. The compiled train step is unaffected: it was traced before, and its
    inputs do not change."""
    layers = [layer for model in models for layer in (model, *model.layers)]
    policies = [layer.dtype_policy for layer in layers]
    try:
        for layer in layers:
            layer.dtype_policy = precision
        yield
    finally:
        for layer, policy in zip(layers, policies, strict=True):
            layer.dtype_policy = policy


class FusedAdam(keras.optimizers.Adam):
    """Keras's Adam, each variable updated by TensorFlow's fused ResourceApplyAdam kernel.

    The same update rule, hyperparameters, slots and checkpoints as keras.optimizers.Adam (tests
    compare the two, and restore one's checkpoint into the other). Keras 3 writes the update as
    about a dozen elementwise ops, each a pass through memory over the weights or their moments;
    for our 13.3 M weights on a 2-core CPU that took 37-40 ms, the fused kernel 11 ms, and the bf16
    training step went from 215-236 to 185-190 ms."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or not isinstance(variable, tf.Variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), local_step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


def make_optimizers(generator, discriminator, config):
    g_optimizer = FusedAdam(config.g_lr, beta_1=config.beta1, beta_2=config.beta2)
    d_optimizer = FusedAdam(config.d_lr, beta_1=config.beta1, beta_2=config.beta2)
    # Built now so that a checkpoint restores their slots instead of deferring.
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)
    return g_optimizer, d_optimizer


# ---------------------------------------------------------------------------------------- data


def epoch_dataset(x_train, batch_size, seed, epoch):
    """Batches (B, 28, 28, 1) float32 in [-1, 1] of one epoch. The order depends only on
    (seed, epoch), so a resumed run sees exactly the batches an uninterrupted one would."""
    order = np.random.default_rng([seed, epoch]).permutation(len(x_train))

    def gather(indices):
        return tf.cast(tf.gather(x_train, indices), tf.float32)[..., None] / 127.5 - 1.0

    return (
        tf.data.Dataset.from_tensor_slices(order)
        .batch(batch_size, drop_remainder=True)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


# --------------------------------------------------------------------------------------- files


class Run:
    """Paths of one run folder."""

    def __init__(self, out):
        self.figures = os.path.join(out, "figures")
        self.model = os.path.join(out, "model")
        self.checkpoints = os.path.join(out, "checkpoints")
        self.generator = os.path.join(self.model, GENERATOR_FILE)
        self.discriminator = os.path.join(self.model, DISCRIMINATOR_FILE)
        self.config = os.path.join(self.model, "config.json")
        self.checkpoint_config = os.path.join(self.checkpoints, "config.json")
        self.step_csv = os.path.join(self.figures, "losses_per_step.csv")
        self.epoch_csv = os.path.join(self.figures, "losses_per_epoch.csv")
        self.loss_figure = os.path.join(self.figures, "network_losses.png")

    def epoch_grid(self, epoch):
        return os.path.join(self.figures, f"image_generated_epoch_{epoch}.png")


def save_model(model, path):
    """model.save, with the weights written through a temporary file beside `path`. By default
    Keras builds the HDF5 weights file in memory and then copies it into the .keras zip: saving
    the discriminator peaked 77 MB above the process's resident memory, 51 MB this way (one-off
    probe). Keras takes this route itself when it judges memory short (keras 3.15 saving_lib)."""
    with atomic_path(path) as temporary:
        if hasattr(saving_lib, "is_memory_sufficient"):
            with mock.patch.object(saving_lib, "is_memory_sufficient", return_value=False):
                model.save(temporary)
        else:  # another Keras: its own way
            model.save(temporary)


def write_json(data, path):
    with atomic_path(path) as temporary, open(temporary, "w") as handle:
        json.dump(data, handle, indent=2)


def write_csv(frame, path):
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def plot_losses(step_frame, epoch_frame, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Plain matplotlib with seaborn's look: importing seaborn would add ~26 MB to the process.
    plt.style.use("seaborn-v0_8-whitegrid")
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    window = max(1, min(50, len(step_frame) // 20))
    smooth = step_frame[["d_loss", "g_loss", "info_loss"]].rolling(window, min_periods=1).mean()
    for name in smooth:
        loss_axis.plot(step_frame["epoch_progress"], smooth[name], linewidth=1, label=name)
    loss_axis.legend(title="loss")
    loss_axis.set(
        title=f"Training losses (rolling mean of {window} steps)",
        xlabel="epoch",
        ylabel="loss",
    )
    accuracy_axis.plot(epoch_frame["epoch"], epoch_frame["test_accuracy"], marker="o")
    accuracy_axis.set(
        title="Q's categorical accuracy on the 10k test images (Hungarian)",
        xlabel="epoch",
        ylabel="accuracy",
        ylim=(0, 1),
    )
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
    # A figure is a web of reference cycles that Python's collector reaches only late; without
    # this the training process grew by about 6 MB per epoch.
    gc.collect()


# ---------------------------------------------------------------------------------------- main


def train(config):
    run = Run(config.out)
    for folder in (run.figures, run.model, run.checkpoints):
        os.makedirs(folder, exist_ok=True)
    x_train, _, x_test, y_test = load_mnist(config.data or None)
    keras.utils.set_random_seed(config.seed)

    precision = training_precision(config.precision)
    generator, discriminator = build_models(precision, config.noise_scale)
    g_optimizer, d_optimizer = make_optimizers(generator, discriminator, config)
    epoch = tf.Variable(0, dtype=tf.int64, name="epoch")  # completed epochs
    rng = tf.random.Generator.from_seed(config.seed)
    checkpoint = tf.train.Checkpoint(
        generator=generator,
        discriminator=discriminator,
        g_optimizer=g_optimizer,
        d_optimizer=d_optimizer,
        epoch=epoch,
        rng=rng,
    )
    manager = tf.train.CheckpointManager(checkpoint, run.checkpoints, config.keep_checkpoints)
    step_frame, epoch_frame = start_or_resume(config, run, checkpoint, manager, epoch, precision)
    if int(epoch) >= config.epochs:
        print(f"{config.out}: already trained {int(epoch)} epochs; raise --epochs or pass --fresh")
        return

    train_step = make_train_step(generator, discriminator, g_optimizer, d_optimizer, config)
    grid_latent = category_grid_latent(config.grid_columns, config.seed)
    x_train = tf.constant(x_train)  # uint8, scaled per batch in the input pipeline
    steps_per_epoch = len(x_train) // config.batch_size
    print(
        f"training epochs {int(epoch) + 1}..{config.epochs}, "
        f"{steps_per_epoch} steps of {config.batch_size}, {precision}"
    )

    while int(epoch) < config.epochs:
        current = int(epoch) + 1
        seeds = rng.make_seeds(steps_per_epoch)  # (2, steps): one stateless seed per step
        show_bar = config.progress and sys.stdout.isatty()
        bar = (
            keras.utils.Progbar(steps_per_epoch, stateful_metrics=["d_loss", "g_loss", "info_loss"])
            if show_bar
            else None
        )
        rows, started = [], time.perf_counter()
        for step, real_images in enumerate(
            epoch_dataset(x_train, config.batch_size, config.seed, current)
        ):
            losses = {
                name: float(value)
                for name, value in train_step(real_images, seeds[:, step]).items()
            }
            if not all(math.isfinite(value) for value in losses.values()):
                raise UserError(
                    f"a loss became {losses} at epoch {current} step {step + 1}; stopped. The "
                    f"last good checkpoint (epoch {int(epoch)}) and models in {run.model} are "
                    f"kept; try a lower "
                    f"learning rate, another --seed, or --fresh"
                )
            rows.append(
                {
                    "epoch": current,
                    "step": (current - 1) * steps_per_epoch + step + 1,
                    **losses,
                }
            )
            if bar:
                bar.update(
                    step + 1,
                    [(name, losses[name]) for name in ("d_loss", "g_loss", "info_loss")],
                )
        seconds = time.perf_counter() - started

        with computing_in("float32", generator, discriminator):
            accuracy, _ = cluster_accuracy(y_test, predict_codes(discriminator, x_test)[0])
            save_png(
                image_grid(generator(grid_latent, training=False), 10, config.grid_columns),
                run.epoch_grid(current),
                scale=2,
            )
            save_model(generator, run.generator)
            save_model(discriminator, run.discriminator)
        new_steps = pd.DataFrame(rows)
        new_steps["epoch_progress"] = new_steps["step"] / steps_per_epoch
        step_frame = pd.concat([step_frame, new_steps], ignore_index=True)
        summary = {
            "epoch": current,
            **new_steps[["d_loss", "g_loss", "info_loss", "categorical_nll", "continuous_nll"]]
            .mean()
            .to_dict(),
            "test_accuracy": accuracy,
            "seconds": seconds,
            "images_per_second": steps_per_epoch * config.batch_size / seconds,
        }
        epoch_frame = pd.concat([epoch_frame, pd.DataFrame([summary])], ignore_index=True)
        plot_losses(step_frame, epoch_frame, run.loss_figure)
        # Read after the model saves and the figure, whose transients make the epoch's peak.
        peak = peak_rss_mb()
        # The whole epoch but the CSV writes and the checkpoint below: loop, readout, grid, saves,
        # figure (the speed target is a full epoch with its outputs, not the loop alone).
        epoch_seconds = time.perf_counter() - started
        epoch_frame.loc[epoch_frame.index[-1], ["peak_rss_mb", "epoch_seconds"]] = [
            peak,
            epoch_seconds,
        ]
        write_csv(step_frame, run.step_csv)
        write_csv(epoch_frame, run.epoch_csv)
        epoch.assign(current)
        manager.save(checkpoint_number=current)  # last, so a checkpoint implies all files above
        print(
            f"epoch {current}/{config.epochs}  d_loss {summary['d_loss']:.3f}  "
            f"g_loss {summary['g_loss']:.3f}  "
            f"info {summary['info_loss']:.3f}  test_acc {accuracy:.4f}  {seconds:.1f}s loop "
            f"({summary['images_per_second']:.0f} img/s), {epoch_seconds:.1f}s in all  "
            f"peak {peak or 0:.0f} MB",
            flush=True,
        )


def start_or_resume(config, run, checkpoint, manager, epoch, precision):
    """Restore the newest checkpoint unless --fresh; return the loss history up to that epoch."""
    saved = {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUMABLE_OPTIONS}
    if config.fresh or manager.latest_checkpoint is None:
        for path in glob.glob(os.path.join(run.checkpoints, "*")) + glob.glob(run.epoch_grid("*")):
            os.remove(path)
        for path in (run.step_csv, run.epoch_csv):
            if os.path.exists(path):
                os.remove(path)
        write_json(saved, run.checkpoint_config)
        write_json({**dataclasses.asdict(config), "precision_used": precision}, run.config)
        return pd.DataFrame(), pd.DataFrame()

    if os.path.exists(run.checkpoint_config):
        with open(run.checkpoint_config) as handle:
            previous = json.load(handle)
        # An option newer than the run is absent from its file: the run behaved as before it.
        defaults = {**dataclasses.asdict(Config()), **BEFORE_OPTION_EXISTED}
        previous = {k: previous.get(k, defaults[k]) for k in saved}
        changed = {k: (previous[k], v) for k, v in saved.items() if previous[k] != v}
        if changed:
            described = ", ".join(
                f"{k} was {old!r}, now {new!r}" for k, (old, new) in changed.items()
            )
            raise UserError(
                f"{run.checkpoints} holds a run with other options ({described}); "
                f"pass the same options to resume it, or --fresh to start over"
            )
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    write_json({**dataclasses.asdict(config), "precision_used": precision}, run.config)
    done = int(epoch)
    print(f"resuming {config.out} after epoch {done} ({manager.latest_checkpoint})")
    frames = []
    for path in (run.step_csv, run.epoch_csv):
        frame = pd.read_csv(path) if os.path.exists(path) else pd.DataFrame()
        # Rows of an epoch that finished its files but not its checkpoint are trained again.
        frames.append(frame[frame["epoch"] <= done] if len(frame) else frame)
    return frames


def main(argv=None):
    try:
        train(parse_config(argv))
    except UserError as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit("interrupted; rerun the same command to resume from the last completed epoch")


if __name__ == "__main__":
    main()
