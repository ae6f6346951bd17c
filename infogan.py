"""Train InfoGAN on MNIST (or Fashion-MNIST, or your own 28x28 grayscale data set).

    python infogan.py                              # our recipe, seed 0, into runs/mnist_seed0
    python infogan.py --preset paper               # the paper's loss and schedule
    python infogan.py --data ~/mnist.npz           # offline: a Keras-layout .npz
    python infogan.py --dataset fashion_mnist      # Fashion-MNIST (see README for its files)
    python infogan.py --epochs 3 --out runs/try    # a scratch run in its own folder
    python infogan.py --strategy mirrored          # all local GPUs (tf.distribute)

A run folder (--out) holds figures/ (a sample grid per epoch, loss CSVs and figure), model/
(the generator and the discriminator with its D and Q heads, as .keras files, and config.json),
logs/ (TensorBoard events) and checkpoints/. Rerunning the same command resumes after the last
completed epoch; --fresh starts over.
"""

import argparse
import dataclasses
import gc
import glob
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time

PRESETS = {
    # Our best recipe: the paper's networks and optimiser with two additions, the augmented
    # categorical loss (Q must also read the 10-way code from randomly moved fakes with thicker
    # or thinner strokes) and a moving average of G's weights as the saved generator.
    "ours": {},
    # The paper's MNIST recipe as its official code runs it: no augmented loss, G as trained,
    # about 5,000 updates of 128 (11 epochs).
    "paper": {
        "lambda_cat_augmented": 0.0,
        "stroke_change": 0.0,
        "generator_ema": 0.0,
        "discriminator_statistics": "training",
        "epochs": 11,
    },
}
STRATEGIES = ("one", "mirrored", "multiworker")
DATASETS = ("mnist", "fashion_mnist")


def option(default, help, **argparse_options):
    """A Config field whose metadata becomes its command-line flag."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_options})


@dataclasses.dataclass
class Config:
    preset: str = option("ours", "recipe the other defaults come from", choices=tuple(PRESETS))
    dataset: str = option("mnist", "data set", choices=DATASETS)
    data: str = option("", "a Keras-layout .npz or a folder of the four IDX .gz files; empty: "
                       "the data set's offline copy, else a download")  # fmt: skip
    epochs: int = option(20, "passes over the training images (468 steps each at batch 128)")
    batch_size: int = option(128, "real images per step over all devices (and as many fakes)")
    g_lr: float = option(1e-3, "Adam learning rate of G")
    d_lr: float = option(2e-4, "Adam learning rate of the discriminator body, D and Q heads")
    beta1: float = option(0.5, "Adam beta1 (both optimizers)")
    beta2: float = option(0.999, "Adam beta2 (both optimizers)")
    lambda_cat: float = option(1.0, "weight of the categorical info loss")
    lambda_cont: float = option(1.0, "weight of the Gaussian info loss of c1 and c2")
    lambda_cat_augmented: float = option(
        1.0, "weight of the categorical info loss on randomly moved fakes; 0: off (the paper)"
    )
    augment_degrees: float = option(
        15.0, "the augmented loss rotates the moved fakes by up to this many degrees either way"
    )
    augment_epochs: int = option(
        0, "with N > 0: --augment-degrees for the first N epochs, --late-augment-degrees after; "
        "0: --augment-degrees throughout"
    )  # fmt: skip
    late_augment_degrees: float = option(15.0, "the rotation range after --augment-epochs")
    augment_deslant: bool = option(
        False, "the augmented loss first shears each fake upright (no slant by its image "
        "moments), so Q reads the 10-way code from upright digits there"
    )  # fmt: skip
    stroke_change: float = option(
        0.5, "the augmented loss also thickens or thins the moved fakes' strokes by up to this "
        "(1: about a pixel); 0: off"
    )  # fmt: skip
    lambda_contrastive: float = option(
        0.0, "weight of InfoGAN-CR's contrastive loss: a pair discriminator tells which code two "
        "fakes share, and G learns to make that visible; 0: off"
    )  # fmt: skip
    generator_ema: float = option(
        0.99, "also keep an exponential moving average of G's weights, with this decay a step "
        "(0.99 averages about the last 100 steps), and save and sample from it; 0: off (the paper)"
    )  # fmt: skip
    discriminator_statistics: str = option(
        "real", "batch-norm statistics of the saved discriminator, which Q's readout of real "
        "digits uses: measured on 2,048 training images at each save (real), or the running "
        "averages of training (the paper), which mix real, fake and moved fake batches",
        choices=("real", "training"),
    )  # fmt: skip
    q_head: str = option(
        "shared", "Q's hidden layer of 128: one for all its outputs (the paper), or one for the "
        "10-way code and one for the continuous codes (separate)", choices=("shared", "separate")
    )  # fmt: skip
    continuous_std: str = option(
        "fixed", "std of Q's Gaussian: fixed at 1 (official code) or learned", choices=("fixed",
                                                                                   "learned")
    )  # fmt: skip
    precision: str = option("auto", "auto: mixed_bfloat16 where the hardware has bf16 matmul",
                            choices=("auto", "float32", "mixed_bfloat16"))  # fmt: skip
    strategy: str = option("one", "one device; mirrored: all local GPUs; multiworker: the "
                           "machines in TF_CONFIG", choices=STRATEGIES)  # fmt: skip
    fused_adam: bool = option(True, "update with TF's fused Adam kernel (fused_adam.py)")
    seed: int = option(0, "initial weights, latents and data order (0 .. 2^31-1)")
    out: str = option("", "run folder; empty: runs/<dataset>_seed<seed>")
    fresh: bool = option(False, "delete this run folder's checkpoints and start over")
    keep_checkpoints: int = option(3, "how many epoch checkpoints to keep (about 187 MB each)")
    grid_columns: int = option(10, "noise draws per row of the per-epoch sample grid")
    progress: bool = option(True, "a progress line every tenth of an epoch")


# Options that may change between an interrupted run and its resumption.
RESUMABLE = {"epochs", "fresh", "data", "out", "progress", "strategy", "fused_adam", "preset"}


class Stopped(Exception):
    """Training stopped by a signal (SIGTERM), handled as Ctrl-C is."""


def parse_config(argv=None):
    """Config from the command line: flags from Config's fields, defaults from the preset."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        metadata = dict(field.metadata)
        metadata["help"] += " (default: %(default)s)"
        if field.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **metadata)
        else:
            kind = {"int": int, "float": float, "str": str}[getattr(field.type, "__name__",
                                                                    field.type)]  # fmt: skip
            parser.add_argument(flag, type=kind, **metadata)
    parser.set_defaults(**dataclasses.asdict(Config()))
    preset = parser.parse_known_args(argv)[0].preset
    parser.set_defaults(**PRESETS.get(preset, {}))
    config = Config(**vars(parser.parse_args(argv)))
    if not config.out:
        config.out = os.path.join("runs", f"{config.dataset}_seed{config.seed}")
    validate_config(config)
    return config


def validate_config(config):
    """One line for each option that cannot work, before anything is loaded or written."""
    from utils import UserError

    def flag(name):
        return "--" + name.replace("_", "-")

    for name in ("g_lr", "d_lr", "beta1", "beta2", "lambda_cat", "lambda_cont",
                 "lambda_cat_augmented", "stroke_change", "augment_degrees",
                 "late_augment_degrees", "lambda_contrastive", "generator_ema"):  # fmt: skip
        if not math.isfinite(getattr(config, name)):
            raise UserError(f"{flag(name)} must be a finite number, got {getattr(config, name)}")
    for name in ("epochs", "batch_size", "g_lr", "d_lr", "keep_checkpoints", "grid_columns"):
        if not getattr(config, name) > 0:
            raise UserError(f"{flag(name)} must be > 0, got {getattr(config, name)}")
    for name in ("beta1", "beta2", "generator_ema"):
        if not 0 <= getattr(config, name) < 1:
            raise UserError(f"{flag(name)} must be in [0, 1), got {getattr(config, name)}")
    for name in ("lambda_cat", "lambda_cont", "lambda_cat_augmented", "stroke_change",
                 "augment_degrees", "late_augment_degrees", "lambda_contrastive",
                 "augment_epochs"):  # fmt: skip
        if getattr(config, name) < 0:
            raise UserError(f"{flag(name)} must be >= 0, got {getattr(config, name)}")
    if not 0 <= config.seed < 2**31:
        raise UserError(f"--seed must be in 0 .. 2^31-1, got {config.seed}")
    if config.lambda_contrastive and config.batch_size % 2:
        raise UserError(f"--lambda-contrastive needs an even --batch-size, got {config.batch_size}")
    if config.lambda_contrastive and config.strategy != "one":
        # One two-replica step matched one device, but left the process's collectives out of
        # step for the next strategy; untested beyond that, so not offered.
        raise UserError("--lambda-contrastive trains on one device only; use --strategy one")
    if config.grid_columns > 100:
        raise UserError(f"--grid-columns must be at most 100, got {config.grid_columns}")


# Parse before the heavy imports, so that --help and a bad option answer at once.
if __name__ == "__main__":
    from utils import UserError

    try:
        CONFIG = parse_config()
    except UserError as error:
        sys.exit(f"error: {error}")

from utils import import_tensorflow  # noqa: E402

tf = import_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import fused_adam  # noqa: E402
from evaluate import cluster_accuracy, predict_codes  # noqa: E402
from model import build_discriminator, build_generator, build_pair_discriminator  # noqa: E402
from utils import (  # noqa: E402
    BEFORE_OPTION_EXISTED,
    REMOVED_OPTIONS,
    RunLock,
    RunPaths,
    UserError,
    affine_transforms,
    apply_affine,
    category_grid_latent,
    change_strokes,
    check_free_space,
    contrastive_pairs,
    deslanted,
    ensure_writable,
    first_line,
    image_grid,
    join_latent,
    load_dataset,
    peak_rss_mb,
    read_json,
    remove_temporaries,
    resolve_precision,
    sample_latent,
    save_figure,
    save_model,
    save_png,
    step_seeds,
    stroke_changes,
    to_model_range,
    train_dataset,
    write_csv,
    write_json,
)

tfd = tfp.distributions


# -------------------------------------------------------------------------------------- losses


def gan_losses(real_logit, fake_logit):
    """Per example: D's loss -log D(x) - log(1 - D(G(z))) and G's non-saturating -log D(G(z)),
    from logits (B, 1) -> (B,)."""
    real, fake = real_logit[:, 0], fake_logit[:, 0]
    bce = tf.nn.sigmoid_cross_entropy_with_logits
    d_gan = bce(labels=tf.ones_like(real), logits=real) + bce(
        labels=tf.zeros_like(fake), logits=fake
    )
    return d_gan, bce(labels=tf.ones_like(fake), logits=fake)


def info_nll(categorical_code, continuous_codes, categorical_logits, mean, log_std, config):
    """The two halves of the info loss L_I, per example (B,): -log Q(c_cat | x) under Q's
    categorical distribution, and -log Q(c1, c2 | x) under Q's Gaussian, one mean and one std
    per code (the std 1 with --continuous-std fixed)."""
    categorical_nll = -tfd.OneHotCategorical(logits=categorical_logits).log_prob(categorical_code)
    if config.continuous_std == "fixed":
        std = tf.ones_like(mean)
    else:  # the clip keeps 1 / std^2 finite while Q's first guesses are poor
        std = tf.exp(tf.clip_by_value(log_std, -5.0, 2.0))
    continuous = tfd.Independent(tfd.Normal(loc=mean, scale=std), reinterpreted_batch_ndims=1)
    return categorical_nll, -continuous.log_prob(continuous_codes)


# ---------------------------------------------------------------------------------- train step


def make_replica_step(
    generator, discriminator, g_optimizer, d_optimizer, config, pair=None, augment_degrees=None
):
    """One simultaneous update of G and of the discriminator (body, D head, Q head) from the same
    fakes, as in the official InfoGAN code; with --lambda-contrastive, `pair` is InfoGAN-CR's
    (pair discriminator, its optimizer), updated in the same step; with --augment-epochs,
    `augment_degrees` is the variable the epoch loop sets to the rotation range. Returns
    replica_step(real_images, seed) -> dict of this replica's share of each loss (summed over the
    replicas, the global batch means).

    Under tf.distribute each replica gets its slice of the global batch of real images; it
    draws the latents (and motions) of the whole global batch from the step's seed and keeps
    its own slice, so the replicas together compute exactly the one-device step."""
    global_batch = config.batch_size
    pairs = global_batch // 2  # InfoGAN-CR's pairs of fakes per step, over all replicas
    pair_discriminator, pair_optimizer = pair or (None, None)
    g_variables = generator.trainable_variables
    d_variables = [  # body + D head + Q head (less the log-std output when it is unused)
        v
        for v in discriminator.trainable_variables
        if config.continuous_std == "learned" or "continuous_log_std" not in v.path
    ]

    def float32(outputs):  # under mixed_bfloat16 the networks compute in bf16
        return [tf.cast(output, tf.float32) for output in outputs]

    def replica_step(real_images, seed):
        # real_images (b, 28, 28, 1) in [-1, 1]: this replica's b = global_batch / replicas.
        b = tf.shape(real_images)[0]
        mine = slice_of_replica(b)
        categorical_code, continuous_codes, noise = (
            part[mine] for part in sample_latent(global_batch, seed)
        )  # (b, 10), (b, 2), (b, 62)
        latent = join_latent(categorical_code, continuous_codes, noise)  # (b, 74)
        if pair_discriminator:  # InfoGAN-CR's pairs of latents join G's one pass (see below)
            shared_code, latent_a, latent_b = (
                part[slice_of_replica(b // 2)] for part in contrastive_pairs(pairs, seed)
            )  # (p,), (p, 74), (p, 74)
            latent = tf.concat([latent, latent_a, latent_b], 0)  # (b + 2p, 74)
        with tf.GradientTape(persistent=True) as tape:
            # One pass of G over the fakes and any pairs: its batch norm sees them all.
            generated = generator(latent, training=True)
            # (b, 28, 28, 1); no slice without pairs: it stops TF's remapper fusing D's first layer
            fake_images = generated[:b] if pair_discriminator else generated
            real_logit = float32(discriminator(real_images, training=True))[0]
            fake_logit, categorical_logits, mean, log_std = float32(
                discriminator(fake_images, training=True)
            )
            d_gan, g_gan = gan_losses(real_logit, fake_logit)
            categorical_nll, continuous_nll = info_nll(
                categorical_code, continuous_codes, categorical_logits, mean, log_std, config
            )
            # L_I, per example: lambda_cat * H(c_cat | Q) + lambda_cont * H(c1, c2 | Q)
            info = config.lambda_cat * categorical_nll + config.lambda_cont * continuous_nll
            losses = {"categorical_nll": categorical_nll, "continuous_nll": continuous_nll}
            if config.lambda_cat_augmented:
                # Q must also read the 10-way code from the fakes rotated, stretched and shifted
                # (a third discriminator pass), so G cannot carry it in slant or width alone.
                degrees = config.augment_degrees if augment_degrees is None else augment_degrees
                motions = affine_transforms(global_batch, seed, degrees)[mine]  # (b, 8)
                if config.augment_deslant:  # upright first: no slant reaches Q in this term
                    motions = deslanted(fake_images, motions)
                moved = apply_affine(fake_images, motions)
                if config.stroke_change:  # and thicker or thinner strokes
                    changes = stroke_changes(global_batch, seed, config.stroke_change)[mine]
                    moved = change_strokes(moved, changes)
                moved_logits = float32(discriminator(moved, training=True))[1]
                losses["augmented_categorical_nll"] = -tfd.OneHotCategorical(
                    logits=moved_logits
                ).log_prob(categorical_code)
                info += config.lambda_cat_augmented * losses["augmented_categorical_nll"]
            # Who learns from what: d_loss updates the shared body, D head and Q head, so the info
            # loss trains Q AND the body it shares with D; g_loss updates G only, so G learns to
            # fool D and to make its codes readable by Q.
            losses.update(d_loss=d_gan + info, g_loss=g_gan + info, info_loss=info)
            losses = {
                name: tf.nn.compute_average_loss(value, global_batch_size=global_batch)
                for name, value in losses.items()
            }
            if pair_discriminator:
                # InfoGAN-CR: two fakes share their noise and one code; the pair discriminator
                # learns which, and G (through g_loss) to make each code's effect its own.
                image_a, image_b = tf.split(generated[b:], 2)  # (p, 28, 28, 1) each
                shared_code_logits = tf.cast(
                    pair_discriminator(tf.concat([image_a, image_b], -1), training=True),
                    tf.float32,
                )
                contrastive_nll = -tfd.Categorical(logits=shared_code_logits).log_prob(shared_code)
                losses["contrastive_nll"] = tf.nn.compute_average_loss(
                    contrastive_nll, global_batch_size=pairs
                )
                losses["g_loss"] += config.lambda_contrastive * losses["contrastive_nll"]
        d_gradients = tape.gradient(losses["d_loss"], d_variables)
        g_gradients = tape.gradient(losses["g_loss"], g_variables)
        # Under a strategy the optimizers sum the replicas' gradients before they apply them.
        d_optimizer.apply_gradients(zip(d_gradients, d_variables, strict=True))
        g_optimizer.apply_gradients(zip(g_gradients, g_variables, strict=True))
        if pair_discriminator:  # contrastive_nll updates it (and, through g_loss, G)
            pair_variables = pair_discriminator.trainable_variables
            pair_gradients = tape.gradient(losses["contrastive_nll"], pair_variables)
            pair_optimizer.apply_gradients(zip(pair_gradients, pair_variables, strict=True))
        return losses

    return replica_step


def slice_of_replica(per_replica):
    """The slice of a global batch that this replica holds (the whole batch on one device)."""
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    start = tf.cast(replica, tf.int32) * per_replica
    return slice(start, start + per_replica)


def loss_names(config):
    names = ["d_loss", "g_loss", "info_loss", "categorical_nll", "continuous_nll"]
    names += ["augmented_categorical_nll"] * bool(config.lambda_cat_augmented)
    return names + ["contrastive_nll"] * bool(config.lambda_contrastive)


def make_train_step(replica_step, strategy, generator_average=None):
    """train_step(batch, seed) -> {loss name: global batch mean}: one step of every replica,
    compiled. The epoch loop calls it without reading its losses back, and reads them a tenth
    of an epoch at a time, so the host never waits on a step. generator_average: (G, the model
    holding the moving average of G's weights, decay) with --generator-ema."""

    # No AutoGraph: the step's Python branches and loops test Python values only, and
    # converting its code cost ~0.9 s of every run's first step (docs/performance.md).
    @tf.function(autograph=False)
    def train_step(batch, seed):
        per_replica = strategy.run(replica_step, args=(batch, seed))
        return {
            name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for name, value in per_replica.items()
        }

    if generator_average is None:
        return train_step
    generator, average, decay = generator_average

    @tf.function(autograph=False)
    def update_average():  # outside the replicas, once for all their copies
        for mean, weight in zip(
            average.trainable_variables, generator.trainable_variables, strict=True
        ):
            mean.assign_sub((1.0 - decay) * (mean - weight))

    def train_step_and_average(batch, seed):
        # A call of its own, after the step's: inside the step it raised a run's peak memory
        # by ~70 MB more (docs/performance.md, 2026-12-05).
        losses = train_step(batch, seed)
        update_average()
        return losses

    return train_step_and_average


# ---------------------------------------------------------------------------- devices, models


def make_strategy(name):
    """The tf.distribute strategy of --strategy; "one" is TF's default (one device)."""
    if name == "one":
        return tf.distribute.get_strategy()
    if name == "mirrored":  # every local GPU; without one, every logical CPU device
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    try:
        cluster = json.loads(os.environ["TF_CONFIG"])
        cluster["cluster"]["worker"], cluster["task"]["type"], cluster["task"]["index"]
    except KeyError as error:
        raise UserError(
            f"--strategy multiworker needs TF_CONFIG with a cluster and this task ({error} is "
            f"missing); see the README, 'Several machines'"
        ) from None
    except (ValueError, TypeError) as error:
        raise UserError(f"TF_CONFIG is not valid JSON ({first_line(error)})") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy):
    """Whether this process writes the run's files: always on one machine; among several, the
    chief task, or worker 0 when the cluster names no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and ("chief" not in resolver.cluster_spec().as_dict())
    )


def training_precision(requested):
    """The dtype policy that --precision resolves to on this machine (see utils)."""
    capabilities = [
        tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    return resolve_precision(requested, capabilities)


def build_models(precision, synchronized_bn=False, q_head="shared"):
    """G and the discriminator with their layers computing in `precision` (a Keras dtype policy)."""
    return built_in(
        precision,
        lambda: (
            build_generator(synchronized_bn=synchronized_bn),
            build_discriminator(synchronized_bn=synchronized_bn, q_head=q_head),
        ),
    )


def built_in(precision, build):
    """What build() makes with its layers computing in `precision`. The variables are float32
    under every policy, so weights move freely between precisions."""
    keras.mixed_precision.set_global_policy(precision)
    try:
        return build()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def make_optimizers(generator, discriminator, config, replicas=1):
    make = fused_adam.make_adam
    g_optimizer = make(config.g_lr, config.beta1, config.beta2, config.fused_adam, replicas)
    d_optimizer = make(config.d_lr, config.beta1, config.beta2, config.fused_adam, replicas)
    # Built now: a checkpoint then restores their slots at once, and under MirroredStrategy an
    # optimizer built lazily in the first step fails (keras-team/keras issue 23085).
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)
    return g_optimizer, d_optimizer


def copy_weights(target, source):
    """Every weight of `source` into the same-shaped model `target` (any strategy, precision)."""
    for target_weight, source_weight in zip(target.weights, source.weights, strict=True):
        target_weight.assign(source_weight.value)


STATISTICS_SAMPLES = 2048  # latents (averaged G) or real images (saved D) that set statistics
STATISTICS_CHUNK = 256  # inputs a pass: all 2048 at once would add ~470 MB to a run's peak


def statistics_images(x_train, seed):
    """The same STATISTICS_SAMPLES training images at every save: (n, 28, 28, 1) in [-1, 1]."""
    count = min(STATISTICS_SAMPLES, len(x_train))
    chosen = np.random.default_rng(seed).choice(len(x_train), count, replace=False)
    return to_model_range(np.asarray(x_train)[np.sort(chosen)])


def standing_statistics(model, inputs, chunk=STATISTICS_CHUNK):
    """Set every batch-norm layer's moving mean and variance of `model` to their averages over
    training-mode passes over `inputs`, `chunk` at a time (BigGAN's "standing statistics")."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms, "standing_statistics expects batch-norm layers at the model's top level"
    momenta = [norm.momentum for norm in norms]
    try:
        for seen in range(0, len(inputs), chunk):
            batch = inputs[seen : seen + chunk]
            for norm in norms:  # moving = the mean over this and the earlier passes' inputs
                norm.momentum = seen / (seen + len(batch))
            model(batch, training=True)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum


class Training:
    """Everything one run trains and checkpoints, built under the strategy's scope."""

    def __init__(self, config, strategy, precision):
        self.strategy, self.precision = strategy, precision
        self.real_statistics_seed = (  # --discriminator-statistics real: which images measure
            [config.seed, 3] if config.discriminator_statistics == "real" else None
        )
        replicas = strategy.num_replicas_in_sync
        # --augment-epochs: the rotation range, set by the epoch loop (a plain variable, not a
        # distributed one: every worker sets it alike; read-only in the step).
        self.augment_degrees = tf.Variable(config.augment_degrees, trainable=False, name="degrees")
        with strategy.scope():
            self.generator, self.discriminator = build_models(
                precision, replicas > 1, config.q_head
            )
            self.g_optimizer, self.d_optimizer = make_optimizers(
                self.generator, self.discriminator, config, replicas
            )
            self.epoch = tf.Variable(0, dtype=tf.int64, name="epoch")  # completed epochs
            self.pair = None  # InfoGAN-CR's pair discriminator and its optimizer, when used
            if config.lambda_contrastive:
                pair_discriminator = built_in(precision, build_pair_discriminator)
                pair_optimizer = fused_adam.make_adam(
                    config.d_lr, config.beta1, config.beta2, config.fused_adam, replicas
                )
                pair_optimizer.build(pair_discriminator.trainable_variables)
                self.pair = (pair_discriminator, pair_optimizer)
            # --generator-ema: the moving average of G's trainable weights, saved in G's place.
            # It never runs in training, so its batch-norm statistics are measured afresh at
            # each export (standing_statistics), not averaged.
            self.generator_ema = self.statistics_latent = None
            if config.generator_ema:
                self.generator_ema = build_generator()  # float32 weights under every policy
                copy_weights(self.generator_ema, self.generator)
                self.statistics_latent = join_latent(  # salt 2: apart from the grid's [seed, 1]
                    *sample_latent(STATISTICS_SAMPLES, [config.seed, 2])
                )  # (2048, 74)
        self.checkpoint = tf.train.Checkpoint(
            generator=self.generator,
            discriminator=self.discriminator,
            g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer,
            epoch=self.epoch,
            **(
                {"pair_discriminator": self.pair[0], "pair_optimizer": self.pair[1]}
                if self.pair
                else {}
            ),
            **({} if self.generator_ema is None else {"generator_ema": self.generator_ema}),
        )
        replica_step = make_replica_step(
            self.generator,
            self.discriminator,
            self.g_optimizer,
            self.d_optimizer,
            config,
            self.pair,
            self.augment_degrees if config.augment_epochs else None,
        )
        self.train_step = make_train_step(
            replica_step,
            strategy,
            (self.generator, self.generator_ema, config.generator_ema)
            if self.generator_ema is not None
            else None,
        )
        # What the run saves and samples from: G, or with --generator-ema its moving average.
        self.saved = (
            self.generator if self.generator_ema is None else self.generator_ema,
            self.discriminator,
        )
        # The saved models, the per-epoch readout and grid compute in float32 whatever the
        # training precision and device count, so files and numbers do not depend on them. On
        # one device a model that computes in float32 (the average always) is its own export.
        self.exports = tuple(
            model if replicas == 1 and model.compute_dtype == "float32" else build()
            for model, build in zip(
                self.saved,
                (build_generator, lambda: build_discriminator(q_head=config.q_head)),
                strict=True,
            )
        )

    def sync_exports(self, x_train):
        """Copy the saved models' weights into their float32 exports; with the average, measure
        the exported average's batch-norm statistics, and with --discriminator-statistics real
        the exported discriminator's on real training images `x_train` (N, 28, 28) uint8."""
        for export, trained in zip(self.exports, self.saved, strict=True):
            if export is not trained:
                copy_weights(export, trained)
        if self.generator_ema is not None:
            standing_statistics(self.exports[0], self.statistics_latent)
        if self.real_statistics_seed is not None:
            # Training never reads the running statistics (batch norm in training mode uses the
            # batch's), which average real, fake and moved fake batches: Q's readout of real
            # digits gets real images' own. In a float32 run the export is D itself; no matter.
            standing_statistics(
                self.exports[1], statistics_images(x_train, self.real_statistics_seed)
            )

    def checkpoint_bytes(self):
        """The size of one checkpoint: every model's weights and every optimizer's slots."""
        variables = [*self.generator.weights, *self.discriminator.weights]
        variables += [*self.g_optimizer.variables, *self.d_optimizer.variables]
        if self.pair:
            variables += [*self.pair[0].weights, *self.pair[1].variables]
        if self.generator_ema is not None:
            variables += self.generator_ema.weights
        return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def dataset_iterator(strategy, x_train, config, epoch):
    """An iterator over one epoch's batches, split over the strategy's replicas."""
    if strategy.num_replicas_in_sync == 1:
        return iter(train_dataset(x_train, config.batch_size, config.seed, epoch))

    def per_pipeline(context):
        return train_dataset(
            x_train,
            config.batch_size,
            config.seed,
            epoch,
            pipelines=context.num_input_pipelines,
            pipeline=context.input_pipeline_id,
            replicas=strategy.num_replicas_in_sync // context.num_input_pipelines,
        )

    return iter(strategy.distribute_datasets_from_function(per_pipeline))


# --------------------------------------------------------------------------------- checkpoints


def checkpoint_numbers(folder):
    """Epochs of the complete checkpoints in `folder` (an index file and its data), newest first."""
    numbers = []
    for path in glob.glob(os.path.join(folder, "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(path))
        if match and glob.glob(os.path.join(folder, f"ckpt-{match.group(1)}.data-*")):
            numbers.append(int(match.group(1)))
    return sorted(numbers, reverse=True)


def write_checkpoint(checkpoint, folder, number, keep):
    """ckpt-<number>, written in a temporary folder and moved in data first and index last, so
    no crash leaves a half-written checkpoint under a real name; then the older ones beyond the
    newest `keep` are removed (index first, so a half-removed one is never taken for whole)."""
    partial = os.path.join(folder, f".partial-{number}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        checkpoint.write(os.path.join(partial, f"ckpt-{number}"))
        for name in sorted(os.listdir(partial), key=lambda name: name.endswith(".index")):
            os.replace(os.path.join(partial, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    for old in checkpoint_numbers(folder)[keep:]:
        os.remove(os.path.join(folder, f"ckpt-{old}.index"))
        for path in glob.glob(os.path.join(folder, f"ckpt-{old}.data-*")):
            os.remove(path)


def restore_newest(checkpoint, folder):
    """Restore the newest checkpoint that reads back whole, saying so in one line when a newer
    one is damaged; returns its epoch. None restoring is a UserError, never a silent restart."""
    failures = []
    for number in checkpoint_numbers(folder):
        prefix = os.path.join(folder, f"ckpt-{number}")
        try:
            checkpoint.read(prefix).assert_existing_objects_matched()
        except Exception as error:  # TF raises many kinds for a damaged file (IndexError too)
            failures.append(f"{prefix} cannot be read ({first_line(error)})")
            continue
        if failures:
            print(f"warning: {failures[0]}; resuming from {prefix} instead", flush=True)
        return number
    raise UserError(
        f"{failures[0]}, and no older checkpoint in {folder} restores either; move the damaged "
        f"files away or pass --fresh to start over"
    )


def stray_checkpoint_files(folder):
    """Checkpoint files that belong to no complete checkpoint."""
    complete = {f"ckpt-{n}" for n in checkpoint_numbers(folder)}
    return [
        path
        for path in glob.glob(os.path.join(folder, "ckpt-*"))
        if os.path.basename(path).split(".")[0] not in complete
    ]


# ---------------------------------------------------------------------------- start or resume


def run_options(config):
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUMABLE}


def start_or_resume(config, paths, training, chief):
    """Restore the newest good checkpoint unless --fresh; return (completed epochs, the step and
    epoch loss history up to them). --fresh is the only thing that deletes checkpoints."""
    numbers = checkpoint_numbers(paths.checkpoints)
    strays = stray_checkpoint_files(paths.checkpoints)
    if config.fresh or not numbers:
        if strays and not config.fresh:
            raise UserError(
                f"{paths.checkpoints} holds checkpoint files but no complete checkpoint "
                f"({os.path.basename(strays[0])}, ...); pass --fresh to start over"
            )
        if chief:
            clear_run_outputs(paths, config.fresh)
            write_json(run_options(config), paths.checkpoint_config)
            write_json(resolved_config(config, training), paths.config)
        return 0, pd.DataFrame(), pd.DataFrame()

    previous = read_json(paths.checkpoint_config, "run options")
    if not isinstance(previous, dict):
        raise UserError(f"{paths.checkpoint_config}: the run options file is damaged")
    for name, value in REMOVED_OPTIONS.items():
        if previous.get(name, value) != value:
            raise UserError(
                f"{paths.checkpoints} holds a run made with {name}={previous[name]!r}, an option "
                f"this version no longer has; train it with the version that made it, or --fresh"
            )
    saved = run_options(config)
    defaults = {**dataclasses.asdict(Config()), **BEFORE_OPTION_EXISTED}
    previous = {k: previous.get(k, defaults[k]) for k in saved}
    changed = [f"{k} was {previous[k]!r}, now {v!r}" for k, v in saved.items() if previous[k] != v]
    if changed:
        raise UserError(
            f"{paths.checkpoints} holds a run with other options ({', '.join(changed)}); pass "
            f"the same options to resume it, or --fresh to start over"
        )
    done = restore_newest(training.checkpoint, paths.checkpoints)
    if done >= config.epochs:
        return done, None, None
    print(f"resuming {paths.out} after epoch {done}", flush=True)
    if chief:
        write_json(resolved_config(config, training), paths.config)
    return done, *loss_history(paths, done)


def loss_history(paths, done):
    """The CSV rows of the epochs up to `done` (rows of an epoch that wrote its files but not
    its checkpoint are trained again); one warning line when a CSV lacks some of them."""
    frames = []
    for path in (paths.step_csv, paths.epoch_csv):
        try:
            frame = pd.read_csv(path)
            frame = frame[frame["epoch"] <= done]
        except (OSError, ValueError, KeyError, pd.errors.ParserError):
            frame = pd.DataFrame()
        missing = sorted(set(range(1, done + 1)) - set(frame.get("epoch", [])))
        if missing:
            print(
                f"warning: {path} lacks epochs {missing[0]}..{missing[-1]} (deleted or damaged); "
                f"it will hold the epochs trained from now on",
                flush=True,
            )
        frames.append(frame)
    return frames


def clear_run_outputs(paths, fresh):
    """A new run in an old folder: remove the old run's checkpoints (with --fresh), epoch grids,
    CSVs and TensorBoard events, which would otherwise mix with the new run's."""
    old = glob.glob(paths.epoch_grid("*")) + [p for p in (paths.step_csv, paths.epoch_csv)
                                              if os.path.exists(p)]  # fmt: skip
    old += glob.glob(os.path.join(paths.logs, "*"))
    if fresh:
        old += glob.glob(os.path.join(paths.checkpoints, "*"))
    for path in old:
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    if old:
        print(f"{paths.out}: removed {len(old)} files of an earlier run", flush=True)


def resolved_config(config, training):
    return {
        **dataclasses.asdict(config),
        "precision_used": training.precision,
        "replicas": training.strategy.num_replicas_in_sync,
        "tensorflow": tf.__version__,
    }


# --------------------------------------------------------------------------------- the epochs


def train_epoch(training, x_train, config, epoch, clock, writer, max_steps=None):
    """One epoch of steps (its first `max_steps` for the benchmark); returns the per-step loss
    rows. Losses are read, checked and logged a tenth of an epoch at a time: a non-finite loss
    stops the run within the epoch, before anything of it is saved."""
    steps = int(x_train.shape[0]) // config.batch_size
    chunk = math.ceil(steps / 10)
    steps = min(steps, max_steps or steps)
    seeds = tf.constant(step_seeds(config.seed, epoch, steps))
    training.augment_degrees.assign(augment_degrees(config, epoch))
    iterator = dataset_iterator(training.strategy, x_train, config, epoch)
    rows = []
    clock.start_epoch()
    for start in range(0, steps, chunk):
        count = min(chunk, steps - start)
        pending = [training.train_step(next(iterator), seeds[start + i]) for i in range(count)]
        losses = {name: np.array([float(step[name]) for step in pending]) for name in pending[0]}
        first_step = (epoch - 1) * steps + start + 1
        for name, values in losses.items():
            bad = np.flatnonzero(~np.isfinite(values))
            if len(bad):
                raise UserError(
                    f"{name} became {values[bad[0]]} at epoch {epoch} step {start + bad[0] + 1}; "
                    f"stopped. {kept_files(int(training.epoch))}; try lower learning rates or "
                    f"another --seed"
                )
        with writer.as_default():
            for index in range(count):
                for name, values in losses.items():
                    tf.summary.scalar(f"loss/{name}", values[index], step=first_step + index)
        rows += [{"epoch": epoch, "step": first_step + index,
                  **{name: float(values[index]) for name, values in losses.items()}}
                 for index in range(count)]  # fmt: skip
        clock.tick(count, epoch, start + count, steps, losses, config)
    return rows


def augment_degrees(config, epoch):
    """The augmented loss's rotation range in `epoch` (1-based)."""
    if config.augment_epochs and epoch > config.augment_epochs:
        return config.late_augment_degrees
    return config.augment_degrees


def kept_files(done):
    if done == 0:
        return "No epoch had completed, so nothing was saved"
    return f"The checkpoint and models of epoch {done} are kept"


class Clock:
    """Progress lines every tenth of an epoch: images/s and the time left, estimated from the
    steps run so far in this process (the first call, which traces the step, left out)."""

    def __init__(self, steps_to_go, batch_size):
        self.steps_to_go, self.batch_size = steps_to_go, batch_size
        self.started, self.counted_steps, self.counted_seconds = time.perf_counter(), 0, 0.0
        self.first = True

    def start_epoch(self):
        self.started = time.perf_counter()

    def tick(self, count, epoch, step, steps, losses, config):
        now = time.perf_counter()
        seconds, self.started = now - self.started, now
        self.steps_to_go -= count
        if self.first:  # includes tracing and warm-up
            self.first = False
        else:
            self.counted_steps += count
            self.counted_seconds += seconds
        if not config.progress:
            return
        rate = self.counted_steps / self.counted_seconds if self.counted_steps else count / seconds
        means = "  ".join(f"{name} {losses[name].mean():.3f}" for name in
                          ("d_loss", "g_loss", "info_loss"))  # fmt: skip
        print(
            f"epoch {epoch}/{config.epochs} {100 * step / steps:3.0f}%  {means}  "
            f"{rate * self.batch_size:.0f} img/s  epoch left {duration((steps - step) / rate)}"
            f"  run left {duration(self.steps_to_go / rate)}",
            flush=True,
        )


def duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def end_of_epoch(training, paths, config, data, epoch, rows, history, writer, grid_latent):
    """The chief's outputs of a finished epoch: Q's test accuracy, the sample grid, both models,
    the loss CSVs and figure, TensorBoard; returns the updated history and the summary."""
    x_test, y_test = data[2], data[3]
    training.sync_exports(data[0])
    generator, discriminator = training.exports
    accuracy = float(cluster_accuracy(y_test, predict_codes(discriminator, x_test)[0])[0])
    grid = image_grid(generator(grid_latent, training=False), 10, config.grid_columns)
    save_png(grid, paths.epoch_grid(epoch), scale=2)
    save_model(generator, paths.generator)
    save_model(discriminator, paths.discriminator)

    step_frame, epoch_frame = history
    new_steps = pd.DataFrame(rows)
    steps_per_epoch = len(new_steps)
    new_steps["epoch_progress"] = new_steps["step"] / steps_per_epoch
    step_frame = pd.concat([step_frame, new_steps], ignore_index=True)
    summary = {
        "epoch": epoch,
        **new_steps[loss_names(config)].mean().to_dict(),
        "test_accuracy": accuracy,
    }
    with writer.as_default():
        tf.summary.scalar("test_accuracy", accuracy, step=epoch * steps_per_epoch)
        tf.summary.image("samples", grid[None, :, :, None], step=epoch * steps_per_epoch)
    writer.flush()
    return step_frame, epoch_frame, summary


def write_history(paths, step_frame, epoch_frame):
    write_csv(step_frame, paths.step_csv)
    write_csv(epoch_frame, paths.epoch_csv)
    plot_losses(step_frame, epoch_frame, paths.loss_figure)


def plot_losses(step_frame, epoch_frame, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.style.use("seaborn-v0_8-whitegrid")
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    window = max(1, min(50, len(step_frame) // 20))
    smooth = step_frame[["d_loss", "g_loss", "info_loss"]].rolling(window, min_periods=1).mean()
    for name in smooth:
        loss_axis.plot(step_frame["epoch_progress"], smooth[name], linewidth=1, label=name)
    loss_axis.legend(title="loss")
    loss_axis.set(title=f"Training losses (rolling mean of {window} steps)", xlabel="epoch",
                  ylabel="loss")  # fmt: skip
    accuracy_axis.plot(epoch_frame["epoch"], epoch_frame["test_accuracy"], marker="o")
    accuracy_axis.set(title="Q's categorical accuracy on the test images (Hungarian)",
                      xlabel="epoch", ylabel="accuracy", ylim=(0, 1))  # fmt: skip
    figure.tight_layout()
    save_figure(figure, path)
    gc.collect()  # a figure's reference cycles are freed late; without this ~6 MB per epoch


# ---------------------------------------------------------------------------------------- main


def train(config):
    strategy = make_strategy(config.strategy)  # first: it fixes the devices TF then uses
    paths = RunPaths(config.out)
    if not is_chief(strategy):
        # Other workers restore from the chief's checkpoints (shared storage) and write theirs,
        # which checkpointing under MultiWorkerMirroredStrategy needs, to a scratch folder.
        scratch = tempfile.mkdtemp(prefix="infogan-worker-")
        try:
            return train_in(config, strategy, paths, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    for folder in paths.folders():
        ensure_writable(folder)
    with RunLock(paths.lock):
        removed = remove_temporaries(paths)
        if removed:
            print(f"{paths.out}: removed {len(removed)} leftovers of an interrupted write")
        train_in(config, strategy, paths, paths.checkpoints)


def train_in(config, strategy, paths, checkpoints):
    """Train in the run folder `paths` (written by the chief only), checkpointing into
    `checkpoints` (the run's own on the chief, a scratch folder on the other workers)."""
    chief = checkpoints == paths.checkpoints
    data = load_dataset(config.dataset, config.data or None)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UserError(
            f"--batch-size {config.batch_size} does not split over {replicas} replicas; "
            f"pass a multiple of {replicas}"
        )
    steps = len(data[0]) // config.batch_size
    if steps < 1:
        raise UserError(
            f"the training set has {len(data[0])} images, fewer than one batch of "
            f"{config.batch_size}; pass a smaller --batch-size"
        )
    keras.utils.set_random_seed(config.seed)
    training = Training(config, strategy, training_precision(config.precision))
    done, step_frame, epoch_frame = start_or_resume(config, paths, training, chief)
    if done >= config.epochs:
        print(f"{config.out}: already trained {done} epochs; raise --epochs or pass --fresh")
        return

    writer = tf.summary.create_file_writer(paths.logs) if chief else tf.summary.create_noop_writer()
    grid_latent = category_grid_latent(config.grid_columns, config.seed)
    x_train = tf.constant(data[0])  # uint8, scaled per batch in the input pipeline
    needed = training.checkpoint_bytes() + 2 * 30e6  # a checkpoint and the two model files
    print(
        f"training {config.dataset} epochs {done + 1}..{config.epochs}: {steps} steps of "
        f"{config.batch_size} on {replicas} replica(s), {training.precision}, into {paths.out}",
        flush=True,
    )
    clock = Clock((config.epochs - done) * steps, config.batch_size)
    for epoch in range(done + 1, config.epochs + 1):
        check_free_space(checkpoints, needed, "an epoch's checkpoint and models")
        started = time.perf_counter()
        rows = train_epoch(training, x_train, config, epoch, clock, writer)
        loop_seconds = time.perf_counter() - started
        if chief:
            step_frame, epoch_frame, summary = end_of_epoch(
                training, paths, config, data, epoch, rows, (step_frame, epoch_frame), writer,
                grid_latent,
            )  # fmt: skip
            summary.update(
                seconds=loop_seconds,
                images_per_second=steps * config.batch_size / loop_seconds,
                epoch_seconds=time.perf_counter() - started,  # the loop, readout, grid, models
                peak_rss_mb=peak_rss_mb(),
                **peak_gpu_mb(),
            )
            epoch_frame = pd.concat([epoch_frame, pd.DataFrame([summary])], ignore_index=True)
            # Before the checkpoint: a kill between the two leaves rows a resume trims, never an
            # epoch whose checkpoint exists without its rows.
            write_history(paths, step_frame, epoch_frame)
        training.epoch.assign(epoch)
        write_checkpoint(training.checkpoint, checkpoints, epoch, config.keep_checkpoints)
        if not chief:
            continue
        print(
            f"epoch {epoch}/{config.epochs}  d_loss {summary['d_loss']:.3f}  g_loss "
            f"{summary['g_loss']:.3f}  info {summary['info_loss']:.3f}  test_acc "
            f"{summary['test_accuracy']:.4f}  {loop_seconds:.1f}s loop "
            f"({summary['images_per_second']:.0f} img/s), {summary['epoch_seconds']:.1f}s in all"
            f"  peak {summary['peak_rss_mb'] or 0:.0f} MB",
            flush=True,
        )
    if chief:
        print(
            f"done: {paths.out} (models in {paths.model}, figures in {paths.figures}, "
            f"TensorBoard: tensorboard --logdir {paths.logs}). Next:\n"
            f"  python generate_sample_latent.py --model {paths.out}\n"
            f"  python generate_gif.py --figures {paths.figures}\n"
            f"  python evaluate.py --model-dir {paths.model}"
        )


def peak_gpu_mb():
    """{"peak_gpu_mb": peak memory TensorFlow allocated on the first GPU} where there is one."""
    if not tf.config.list_logical_devices("GPU"):
        return {}
    return {"peak_gpu_mb": tf.config.experimental.get_memory_info("GPU:0")["peak"] / 1e6}


def stop_on_sigterm(signum, frame):
    raise Stopped


def main(argv=None, config=None):
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        train(config or parse_config(argv))
    except UserError as error:
        sys.exit(f"error: {error}")
    except (KeyboardInterrupt, Stopped):
        sys.exit("interrupted; rerun the same command to resume after the last completed epoch")
    except OSError as error:  # a full disk, a folder gone: the last saved epoch is intact
        where = f"{error.filename}: " if error.filename else ""
        sys.exit(f"error: {where}{error.strerror or first_line(error)}; the last completed "
                 f"epoch's files are intact; fix that and rerun the same command")  # fmt: skip
    except tf.errors.OpError as error:  # the same, raised by TensorFlow's own file writes
        sys.exit(f"error: {first_line(error)}; the last completed epoch's files are intact; "
                 f"fix that and rerun the same command")  # fmt: skip


if __name__ == "__main__":
    main(config=CONFIG)
