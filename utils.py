"""Helpers shared by training, evaluation and the generate scripts, one section per topic:
hardware, data, latents, augmentation, files, metrics.

TensorFlow and TFP are imported inside the functions that need them, so that a script that
needs neither (generate_gif.py, `--help`) starts in a fraction of a second.
"""

import contextlib
import glob
import gzip
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import zipfile

import numpy as np

# The generator's ONE latent input, laid out [categorical one-hot (10) | c1 | c2 | noise (62)].
CATEGORICAL_DIM = 10  # K of the categorical code c_cat ~ Cat(K, 1/K)
CONTINUOUS_DIM = 2  # c1, c2 ~ Uniform(-1, 1)
NOISE_DIM = 62  # incompressible noise z ~ Uniform(-1, 1)
LATENT_DIM = CATEGORICAL_DIM + CONTINUOUS_DIM + NOISE_DIM  # 74

# Where each part lives in the generator's input vector.
CATEGORICAL_SLICE = slice(0, CATEGORICAL_DIM)
CONTINUOUS_SLICE = slice(CATEGORICAL_DIM, CATEGORICAL_DIM + CONTINUOUS_DIM)
NOISE_SLICE = slice(CATEGORICAL_DIM + CONTINUOUS_DIM, LATENT_DIM)

IMAGE_SHAPE = (28, 28, 1)  # pixels in [-1, 1]


class UserError(Exception):
    """A problem with the user's input or machine, reported as one line without a traceback."""


def first_line(error):
    """The first line of an exception's message (TF and Keras errors run over many lines)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


# ------------------------------------------------------------------------------------ hardware

PRECISIONS = ("auto", "float32", "mixed_bfloat16")


# TensorFlow's start-up notices on a machine without a GPU: the CUDA probe (an error-level
# "failed call to cuInit" reads like a failure) and the CPU-feature and oneDNN notes.
START_UP_NOTICES = ("cudart_stub.cc", "cuda_platform.cc", "cuInit", "cpu_feature_guard.cc",
                    "To enable the following instructions", "oneDNN custom operations",
                    "before absl::InitializeLog", "oneDNN supports DT_INT64")  # fmt: skip


@contextlib.contextmanager
def filtered_stderr():
    """Drop START_UP_NOTICES from what the block writes to stderr and pass the rest on. They are
    written by TensorFlow's C++ code, past Python's reach, hence the file-descriptor swap."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if not any(notice in line for notice in START_UP_NOTICES):
                    sys.stderr.write(line)


def import_tensorflow():
    """`import tensorflow` without its start-up notices. It leaves TF's devices uninitialized,
    so logical devices and tf.distribute's collectives can still be set up after it."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe runs here
    return tf


def cpu_has_bf16_matmul(cpuinfo="/proc/cpuinfo"):
    """True when the CPU multiplies bfloat16 in hardware (AVX512_BF16 or AMX), which is when
    mixed bfloat16 is faster than float32; elsewhere TF emulates it and it is slower."""
    try:
        with open(cpuinfo) as handle:
            flags = set(handle.read().split())
    except OSError:  # not Linux
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision, gpu_compute_capabilities=(), cpu_bf16=None):
    """The Keras dtype policy to train with: "auto" picks mixed_bfloat16 on a GPU with bf16
    tensor cores (compute capability 8.0+) or a CPU with bf16 matmul, else float32."""
    if precision != "auto":
        return precision
    if gpu_compute_capabilities:
        return "mixed_bfloat16" if min(gpu_compute_capabilities) >= (8, 0) else "float32"
    if cpu_bf16 is None:
        cpu_bf16 = cpu_has_bf16_matmul()
    return "mixed_bfloat16" if cpu_bf16 else "float32"


def peak_rss_mb():
    """Peak resident memory of this process so far, in MB (10^6 bytes); None where unknown.

    Linux's VmHWM first: getrusage's maxrss of a process started by another (benchmark.py's
    epoch runs) begins at its parent's size, since fork copies the parent's high-water mark."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes there, KiB here


# ---------------------------------------------------------------------------------------- data

KERAS_DATASETS = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
IDX_FILES = {  # array name: IDX file of the MNIST family (also read without .gz)
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
# Where each data set is found offline, in order, before Keras tries to download it.
DATASET_SOURCES = {
    "mnist": [os.path.join(KERAS_DATASETS, "mnist.npz")],
    "fashion_mnist": [
        os.path.join(KERAS_DATASETS, "fashion-mnist"),
        "/usr/share/datasets/fashion-mnist",  # Debian's dataset-fashion-mnist package
    ],
}
CLASS_NAMES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion_mnist": [
        "T-shirt",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Boot",
    ],  # fmt: skip
}
PASS_A_FILE = "pass --data PATH (a Keras-layout .npz, or a folder of the four IDX .gz files)"


def load_dataset(dataset="mnist", path=None):
    """(x_train, y_train, x_test, y_test): uint8 images (N, 28, 28) and labels 0..9 (N,).

    From `path` when given (a Keras-layout .npz or an IDX folder), else from the first of
    DATASET_SOURCES[dataset] that exists, else from keras.datasets (which downloads)."""
    if path:
        return read_data(path)
    for source in DATASET_SOURCES[dataset]:
        if os.path.exists(source):
            return read_data(source)
    try:
        import_tensorflow()
        import keras

        loader = getattr(keras.datasets, dataset)
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as error:  # offline: urllib/socket errors of many kinds
        places = " or ".join(DATASET_SOURCES[dataset])
        raise UserError(
            f"{dataset} is not in {places} and could not be downloaded ({first_line(error)}); "
            f"{PASS_A_FILE}"
        ) from None
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return check_arrays(f"keras.datasets.{dataset}", arrays)


def read_data(path):
    """Read and check a data set from a Keras-layout .npz or a folder of IDX files."""
    if os.path.isdir(path):
        return read_idx_folder(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file or folder; {PASS_A_FILE}")
    if not zipfile.is_zipfile(path):
        raise UserError(
            f"{path}: not an .npz archive (truncated, or another format); {PASS_A_FILE}"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in IDX_FILES if name not in npz.files]
            if missing:
                raise UserError(
                    f"{path}: missing arrays {missing} (found {sorted(npz.files)}); a data set "
                    f"needs x_train, y_train, x_test and y_test"
                )
            arrays = {name: npz[name] for name in IDX_FILES}
    except UserError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise UserError(
            f"{path}: cannot be read as an .npz file ({type(error).__name__}: {first_line(error)})"
        ) from None
    return check_arrays(path, arrays)


def read_idx_folder(folder):
    arrays = {}
    for name, file_name in IDX_FILES.items():
        candidates = [os.path.join(folder, file_name), os.path.join(folder, file_name[:-3])]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise UserError(
                f"{folder}: a data folder needs the four IDX files {list(IDX_FILES.values())} "
                f"(or without .gz); {file_name} is missing"
            )
        arrays[name] = read_idx(found)
    return check_arrays(folder, arrays)


def read_idx(path):
    """One IDX file (the MNIST family's format: magic, dimensions, then unsigned bytes)."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise UserError(f"{path}: cannot be read ({first_line(error)})") from None
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path}: not an IDX file of unsigned bytes")
    dims = data[3]
    if len(data) < 4 + 4 * dims:
        raise UserError(f"{path}: the IDX header is cut short; the file is truncated")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise UserError(f"{path}: holds {body.size} bytes for shape {shape}; truncated?")
    return body.reshape(shape)


def check_arrays(source, arrays):
    """The four arrays if they make a data set this repo can train on; else a UserError naming
    `source` and the problem."""
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE[:2]:
            raise UserError(
                f"{source}: x_{split} has shape {images.shape}, expected (N, 28, 28) grayscale "
                f"images"
            )
        if images.dtype != np.uint8:
            raise UserError(f"{source}: x_{split} has dtype {images.dtype}, expected uint8 0..255")
        if not len(images):
            raise UserError(f"{source}: x_{split} is empty; a data set needs a {split} split")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise UserError(
                f"{source}: y_{split} has shape {labels.shape} and dtype {labels.dtype}, "
                f"expected integer labels (N,)"
            )
        if len(images) != len(labels):
            raise UserError(
                f"{source}: x_{split} has {len(images)} images but y_{split} {len(labels)} labels"
            )
        values = np.unique(labels)
        if labels.min() < 0 or labels.max() >= CATEGORICAL_DIM:
            raise UserError(
                f"{source}: y_{split} holds labels {values.min()}..{values.max()}, expected "
                f"0..9 (the evaluation maps the 10 categorical codes to 10 classes)"
            )
    values = np.unique(arrays["y_train"])
    if len(values) < CATEGORICAL_DIM:
        raise UserError(
            f"{source}: y_train holds {len(values)} label values {values.tolist()}, expected all "
            f"10 (the evaluation maps the 10 categorical codes to 10 classes)"
        )
    return tuple(arrays[name].astype(np.uint8) if "y" in name else arrays[name]
                 for name in IDX_FILES)  # fmt: skip


def to_model_range(images):
    """uint8 (N, 28, 28) in [0, 255] -> float32 (N, 28, 28, 1) in [-1, 1] (the tanh range)."""
    return (np.asarray(images, np.float32)[..., None] / 127.5) - 1.0


def epoch_order(count, seed, epoch):
    """The order of the training images in `epoch`: a function of (seed, epoch) alone, so a
    resumed run sees exactly the batches an uninterrupted one would."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def train_dataset(x_train, global_batch, seed, epoch, pipelines=1, pipeline=0, replicas=1):
    """The batches (b, 28, 28, 1) float32 in [-1, 1] of one epoch for one input pipeline.

    x_train is a uint8 tensor (N, 28, 28). Each global batch of `global_batch` images is cut into
    `pipelines * replicas` equal slices; pipeline p yields its `replicas` slices in turn, which
    is how tf.distribute hands them to its replicas. One pipeline and one replica: the whole
    global batch."""
    tf = import_tensorflow()

    per_replica = global_batch // (pipelines * replicas)
    order = epoch_order(int(x_train.shape[0]), seed, epoch)
    steps = len(order) // global_batch
    # (steps, pipelines, replicas * per_replica): this pipeline's share of every global batch
    mine = order[: steps * global_batch].reshape(steps, pipelines, -1)[:, pipeline].ravel()

    def gather(indices):
        return tf.cast(tf.gather(x_train, indices), tf.float32)[..., None] / 127.5 - 1.0

    # One input thread: a batch is a 100 KB gather, and more threads only compete with the
    # training step for the cores.
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    # No autotuning (nothing here is tunable): its thread sleeps 10 ms, 20 ms, ... up to 60 s
    # between passes, and the iterator's end waited for it, pinning epochs of 82-142 s at 142 s.
    options.autotune.enabled = False
    return (
        tf.data.Dataset.from_tensor_slices(mine)
        .batch(per_replica, drop_remainder=True)
        .map(gather)
        .prefetch(2)
        .with_options(options)
    )


# ------------------------------------------------------------------------------------- latents


def _tfp():
    import tensorflow_probability as tfp

    return tfp


_QUIETED = []  # whether the one-time oneDNN notice was already run past filtered_stderr


def latent_priors():
    """InfoGAN's priors as TFP distributions: the 10-way code c_cat ~ Cat(K=10, p=0.1), one-hot;
    each continuous code and each noise value ~ Uniform(-1, 1) (the official code's priors)."""
    tf = import_tensorflow()
    if not _QUIETED:
        # TFP's one-hot sampler transposes int64 indices, for which oneDNN logs an error line
        # once per process (harmless: Eigen does it); run that op once here, quietly, eagerly.
        _QUIETED.append(True)
        with filtered_stderr(), tf.init_scope():
            tf.transpose(tf.zeros([1, 2], tf.int64))

    tfd = _tfp().distributions
    return {
        "categorical": tfd.OneHotCategorical(logits=tf.zeros(CATEGORICAL_DIM), dtype=tf.float32),
        "uniform": tfd.Uniform(low=-1.0, high=1.0),
    }


def sample_latent(batch_size, seed):
    """categorical_code (B, 10) one-hot, continuous_codes (B, 2), noise (B, 62) from the priors.

    `seed` is a stateless seed (two int32 values): the same seed gives the same draw, in eager
    code and inside tf.function alike."""
    priors = latent_priors()
    categorical_seed, continuous_seed, noise_seed = _tfp().random.split_seed(seed, n=3)
    categorical_code = priors["categorical"].sample(batch_size, seed=categorical_seed)
    continuous_codes = priors["uniform"].sample([batch_size, CONTINUOUS_DIM], seed=continuous_seed)
    noise = priors["uniform"].sample([batch_size, NOISE_DIM], seed=noise_seed)
    return categorical_code, continuous_codes, noise


def contrastive_pairs(pairs, seed):
    """InfoGAN-CR's pairs of latents: shared_code (P,) int32, latent_a (P, 74), latent_b (P, 74).
    The two latents of a pair share their noise and ONE code, shared_code (0: the categorical
    code, 1: c1, 2: c2); the other codes differ: another category, fresh continuous values."""
    tf = import_tensorflow()

    code_seed, a_seed, b_seed, shift_seed = _tfp().random.split_seed(
        seed, n=4, salt="contrastive_pairs"
    )
    shared_code = tf.random.stateless_uniform(
        [pairs], code_seed, 0, 1 + CONTINUOUS_DIM, dtype=tf.int32
    )
    categorical_a, continuous_a, noise = sample_latent(pairs, a_seed)
    continuous_b = sample_latent(pairs, b_seed)[1]
    category_a = tf.argmax(categorical_a, axis=-1, output_type=tf.int32)
    other_category = category_a + tf.random.stateless_uniform(
        [pairs], shift_seed, 1, CATEGORICAL_DIM, dtype=tf.int32
    )
    category_b = tf.where(shared_code == 0, category_a, other_category % CATEGORICAL_DIM)
    categorical_b = tf.one_hot(category_b, CATEGORICAL_DIM, dtype=categorical_a.dtype)
    shares = tf.one_hot(shared_code - 1, CONTINUOUS_DIM) > 0  # (P, 2); code 0 shares neither
    continuous_b = tf.where(shares, continuous_a, continuous_b)
    return (
        shared_code,
        join_latent(categorical_a, continuous_a, noise),
        join_latent(categorical_b, continuous_b, noise),
    )


def step_seeds(seed, epoch, steps):
    """One stateless seed (2,) int32 per training step of `epoch`: a function of (seed, epoch)
    alone, like the data order, so a resumed run draws what an uninterrupted one would."""
    rng = np.random.default_rng([seed, epoch, 1])
    return rng.integers(-(2**31), 2**31, size=(steps, 2)).astype(np.int32)


def join_latent(categorical_code, continuous_codes, noise):
    """The generator's input (B, 74) in the order of model.py's slices."""
    tf = import_tensorflow()

    return tf.concat([categorical_code, continuous_codes, noise], axis=-1)


def latent_vectors(categories, continuous_codes, noise):
    """Generator inputs (N, 74) as numpy from categories (N,) ints, continuous codes (N, 2) and
    noise (N, 62): the one place that lays out a latent by hand."""
    categories = np.asarray(categories)
    latent = np.zeros((len(categories), LATENT_DIM), np.float32)
    latent[np.arange(len(categories)), categories] = 1.0
    latent[:, CATEGORICAL_DIM : CATEGORICAL_DIM + CONTINUOUS_DIM] = continuous_codes
    latent[:, CATEGORICAL_DIM + CONTINUOUS_DIM :] = noise
    return latent


def prior_parts(count, seed):
    """Continuous codes (count, 2) and noise (count, 62) drawn from the priors as numpy, the
    same for the same integer seed."""
    _, continuous_codes, noise = sample_latent(count, [seed, 1])
    return np.asarray(continuous_codes), np.asarray(noise)


def category_grid_latent(columns, seed):
    """Latents (10 * columns, 74) for the per-epoch grid: row = categorical value, column = one
    fixed noise draw shared by the whole column, continuous codes at 0."""
    noise = prior_parts(columns, seed)[1]  # (columns, 62)
    categories = np.repeat(np.arange(CATEGORICAL_DIM), columns)
    return latent_vectors(
        categories, np.zeros((len(categories), CONTINUOUS_DIM)), np.tile(noise, (10, 1))
    )


def sweep_latents(code_index, values, categories, noise, other_codes=None):
    """Latents (R * V, 74), row-major: row r keeps category categories[r], noise noise[r] (R, 62)
    and the other continuous code at other_codes[r] (0 by default) FIXED, while code
    `code_index` takes each of `values` (V,) in turn; so a row shows that code's effect alone."""
    values = np.asarray(values, np.float32)
    rows, columns = len(categories), len(values)
    continuous = np.zeros((rows, columns, CONTINUOUS_DIM), np.float32)
    continuous[:, :, code_index] = values
    if other_codes is not None:
        continuous[:, :, 1 - code_index] = np.asarray(other_codes)[:, None]
    return latent_vectors(
        np.repeat(categories, columns),
        continuous.reshape(-1, CONTINUOUS_DIM),
        np.repeat(np.asarray(noise), columns, axis=0),
    )


def latent_sweep(code_index, values, seed):
    """The paper's sweep figure: row = categorical value 0..9, one noise draw per row."""
    noise = prior_parts(CATEGORICAL_DIM, seed)[1]
    return sweep_latents(code_index, values, np.arange(CATEGORICAL_DIM), noise)


# -------------------------------------------------------------------------------- augmentation


def affine_transforms(count, seed, max_degrees=15.0, x_scale=0.2, y_scale=0.1, max_shift=2.0):
    """`count` random motions (count, 8) in the format of ImageProjectiveTransformV3: rotation
    by up to `max_degrees`, stretch by up to 1 +- `x_scale` across and 1 +- `y_scale` down, shift
    by up to `max_shift` pixels, each drawn uniformly. `seed` is a stateless seed, salted so
    that these draws never repeat the latents'."""
    tf = import_tensorflow()

    angle_seed, scale_seed, shift_seed = _tfp().random.split_seed(seed, n=3, salt="random_affine")
    # max_degrees: a number, or a tensor (--augment-epochs changes it during a run)
    angle = tf.random.stateless_uniform([count], angle_seed, -1.0, 1.0) * (
        max_degrees * np.pi / 180
    )
    scale = 1.0 + tf.random.stateless_uniform([count, 2], scale_seed, -1.0, 1.0) * [
        x_scale,
        y_scale,
    ]
    shift = tf.random.stateless_uniform([count, 2], shift_seed, -max_shift, max_shift)
    # Each OUTPUT pixel (x, y) reads the input at M (x, y) + offset: M rotates and divides by the
    # stretch about the image centre, and the offset moves the result.
    cos, sin = tf.cos(angle), tf.sin(angle)
    m00, m01 = cos / scale[:, 0], -sin / scale[:, 0]
    m10, m11 = sin / scale[:, 1], cos / scale[:, 1]
    centre, zero = 13.5, tf.zeros_like(angle)
    offset_x = centre - centre * (m00 + m01) - shift[:, 0]
    offset_y = centre - centre * (m10 + m11) - shift[:, 1]
    return tf.stack([m00, m01, offset_x, m10, m11, offset_y, zero, zero], axis=1)


def apply_affine(images, transforms):
    """Images (B, 28, 28, 1) in [-1, 1] moved by `transforms` (B, 8), bilinear, background -1.
    Gradients reach the images through TF's registered gradient, which warps them back with the
    inverse motion (it leaves out the stretch's area change, a factor of 0.72 to 1.39)."""
    tf = import_tensorflow()

    images = tf.cast(images, tf.float32)
    # A constant output size: computed at run time, it left the step's graph with unknown image
    # sizes, and TF's graph optimizer then failed on the whole step and logged an error.
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=IMAGE_SHAPE[:2],
        fill_value=-1.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def deslanted(images, transforms, max_shear=3.0):
    """`transforms` (B, 8) that first shear each of `images` (B, 28, 28, 1) in [-1, 1] upright:
    the shear that zeroes its intensity-weighted moment mu11 (slant as evaluate.py measures it),
    capped at +-`max_shear`, composed with the given motions into one resampling. No gradient
    flows through the measured shear."""
    tf = import_tensorflow()

    ink = tf.stop_gradient((tf.cast(images[..., 0], tf.float32) + 1.0) / 2.0)  # (B, 28, 28)
    mass = tf.reduce_sum(ink, [1, 2])  # (B,)
    safe = tf.maximum(mass, 1e-6)
    coordinate = tf.range(IMAGE_SHAPE[0], dtype=tf.float32)  # rows down, columns right
    row_mass, column_mass = tf.reduce_sum(ink, 2), tf.reduce_sum(ink, 1)  # (B, 28) each
    mean_y = tf.reduce_sum(row_mass * coordinate, 1) / safe
    mean_x = tf.reduce_sum(column_mass * coordinate, 1) / safe
    mu02 = tf.reduce_sum(row_mass * coordinate**2, 1) / safe - mean_y**2
    mxy = tf.einsum("bij,i,j->b", ink, coordinate, coordinate) / safe
    mu11 = mxy - mean_x * mean_y
    shear = tf.where(mu02 > 1e-6, mu11 / tf.maximum(mu02, 1e-6), 0.0)  # dx per row downwards
    shear = tf.clip_by_value(shear, -max_shear, max_shear)
    # The motion maps an output pixel to (u, v); the upright image there reads the input at
    # (u + shear * (v - mean_y), v).
    m00, m01, offset_x, m10, m11, offset_y, c0, c1 = tf.unstack(transforms, axis=1)
    return tf.stack(
        [m00 + shear * m10, m01 + shear * m11, offset_x + shear * (offset_y - mean_y),
         m10, m11, offset_y, c0, c1],
        axis=1,
    )  # fmt: skip


def stroke_changes(count, seed, max_change):
    """`count` random stroke-thickness changes (count,) uniform in [-max_change, max_change]:
    > 0 thickens, < 0 thins (see change_strokes). Salted apart from the motions' draws."""
    tf = import_tensorflow()
    change_seed = _tfp().random.split_seed(seed, n=1, salt="stroke_changes")[0]
    return tf.random.stateless_uniform([count], change_seed, -max_change, max_change)


def change_strokes(images, changes):
    """Images (B, 28, 28, 1) in [-1, 1] with their strokes thickened (change > 0) or thinned
    (< 0): a blend, by |change|, towards the 3x3 grey-level dilation or erosion (a max or min
    over each pixel's neighbours, which gradients pass through). 1 is about one pixel."""
    tf = import_tensorflow()
    images = tf.cast(images, tf.float32)
    dilated = tf.nn.max_pool2d(images, 3, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-images, 3, 1, "SAME")
    weight = tf.reshape(changes, [-1, 1, 1, 1])
    target = tf.where(weight > 0, dilated, eroded)
    return images + tf.abs(weight) * (target - images)


def random_affine(images, seed, **ranges):
    """Each image moved by its own random motion (affine_transforms' ranges)."""
    return apply_affine(images, affine_transforms(len(images), seed, **ranges))


# --------------------------------------------------------------------------------------- files

GENERATOR_FILE = "infogan_model_generator.keras"
DISCRIMINATOR_FILE = "infogan_model_discriminator.keras"

# Run options added after runs existed, with the value that reproduces a run made before each
# (a resumed run's saved options and an earlier table's config are read with them).
BEFORE_OPTION_EXISTED = {
    "precision": "float32",
    "lambda_cat_augmented": 0.0,
    "dataset": "mnist",
    "stroke_change": 0.0,
    "augment_degrees": 15.0,
    "augment_epochs": 0,
    "late_augment_degrees": 15.0,
    "lambda_contrastive": 0.0,
    "generator_ema": 0.0,
    "discriminator_statistics": "training",
    "augment_deslant": False,
    "q_head": "shared",
}
REMOVED_OPTIONS = {"noise_scale": 1.0}  # an old run resumes only if it used this value


class RunPaths:
    """Where a run folder (infogan.py --out) keeps each of its files."""

    def __init__(self, out):
        self.out = out
        self.figures = os.path.join(out, "figures")
        self.model = os.path.join(out, "model")
        self.checkpoints = os.path.join(out, "checkpoints")
        self.logs = os.path.join(out, "logs")  # TensorBoard events
        self.generator = os.path.join(self.model, GENERATOR_FILE)
        self.discriminator = os.path.join(self.model, DISCRIMINATOR_FILE)
        self.config = os.path.join(self.model, "config.json")
        self.checkpoint_config = os.path.join(self.checkpoints, "config.json")
        self.step_csv = os.path.join(self.figures, "losses_per_step.csv")
        self.epoch_csv = os.path.join(self.figures, "losses_per_epoch.csv")
        self.loss_figure = os.path.join(self.figures, "network_losses.png")
        self.lock = os.path.join(out, ".infogan.lock")

    def epoch_grid(self, epoch):
        return os.path.join(self.figures, f"image_generated_epoch_{epoch}.png")

    def folders(self):
        return [self.figures, self.model, self.checkpoints, self.logs]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); rename it onto `path` on success, so a
    crash never leaves a half-written file. A failed write removes the temporary."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    stem, suffix = os.path.splitext(os.path.basename(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(handle)
    try:
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a result is not
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json(data, path):
    with atomic_path(path) as temporary, open(temporary, "w") as handle:
        json.dump(data, handle, indent=2)


def write_text(text, path):
    with atomic_path(path) as temporary, open(temporary, "w") as handle:
        handle.write(text)


def write_csv(frame, path):
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def markers(table_markdown):
    """The README's markers around the rendered copy of a table file."""
    return f"<!-- table {table_markdown} -->", f"<!-- end of table {table_markdown} -->"


def render_into(readme, table_markdown, text):
    """Replace the block between the markers of `table_markdown` in `readme` with `text`."""
    start, end = markers(table_markdown)
    with open(readme) as handle:
        content = handle.read()
    if start not in content or end not in content:
        raise UserError(f"{readme}: no {start} ... {end} markers to render the table between")
    before, rest = content.split(start, 1)
    after = rest.split(end, 1)[1]
    write_text(f"{before}{start}\n{text}{end}{after}", readme)


def save_png(array, path, scale=1):
    """Write a uint8 image array as PNG atomically, upscaled by `scale` (nearest neighbour)."""
    from PIL import Image

    if scale > 1:
        array = np.kron(array, np.ones((scale, scale), np.uint8))
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")


def save_figure(figure, path, dpi=100):
    """A matplotlib figure as PNG, atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi)
    plt.close(figure)


def save_model(model, path):
    """model.save, atomically (a crash mid-save leaves the previous file whole)."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def read_json(path, what):
    """A JSON file that this repo wrote; a missing or damaged one is a UserError naming it."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what} file") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: the {what} file is damaged ({first_line(error)})") from None


def load_keras_model(path, what):
    """A saved .keras model; a missing, damaged or foreign file is a UserError naming it."""
    if os.path.isdir(path):
        raise UserError(f"{path}: a folder, not a .keras {what} file")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such {what} file; train one with `python infogan.py`")
    if not zipfile.is_zipfile(path):
        raise UserError(
            f"{path}: not a .keras archive (truncated or damaged); retrain or re-copy it"
        )
    import_tensorflow()
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a damaged or foreign file
        raise UserError(f"{path}: not a loadable .keras {what} ({first_line(error)})") from None


def model_path(path, file_name):
    """A .keras file given as itself, as a run folder, or as a run's model/ folder."""
    for candidate in (os.path.join(path, "model", file_name), os.path.join(path, file_name)):
        if os.path.isdir(path) and os.path.isfile(candidate):
            return candidate
    return path


def run_folder(path):
    """The run folder of a model given as a .keras file, a model/ folder or the run folder."""
    path = os.path.abspath(path)
    if os.path.isdir(os.path.join(path, "model")):
        return path
    if os.path.isdir(path):  # a model/ folder
        return os.path.dirname(path)
    parent = os.path.dirname(path)  # a .keras file: <run>/model/<file>.keras, or anywhere
    return os.path.dirname(parent) if os.path.basename(parent) == "model" else parent


def load_generator(path):
    """A saved InfoGAN generator (file, run folder or model folder): (B, 74) -> (B, 28, 28, 1)."""
    path = model_path(path, GENERATOR_FILE)
    generator = load_keras_model(path, "generator")
    shapes = (tuple(generator.input_shape[1:]), tuple(generator.output_shape[1:]))
    if shapes != ((LATENT_DIM,), IMAGE_SHAPE):
        raise UserError(
            f"{path}: model maps {generator.input_shape} -> {generator.output_shape}, expected an "
            f"InfoGAN generator (None, {LATENT_DIM}) -> (None, 28, 28, 1)"
        )
    return generator


def load_discriminator(path):
    """A saved InfoGAN discriminator with its D and Q heads: image -> four outputs."""
    path = model_path(path, DISCRIMINATOR_FILE)
    discriminator = load_keras_model(path, "discriminator")
    shapes = discriminator.output_shape
    outputs = [tuple(s[1:]) for s in shapes] if isinstance(shapes, list) else [tuple(shapes[1:])]
    expected = [(1,), (CATEGORICAL_DIM,), (CONTINUOUS_DIM,), (CONTINUOUS_DIM,)]
    if tuple(discriminator.input_shape[1:]) != IMAGE_SHAPE or outputs != expected:
        raise UserError(
            f"{path}: model maps {discriminator.input_shape} -> {discriminator.output_shape}, "
            f"expected an InfoGAN discriminator (None, 28, 28, 1) -> d_logit, categorical "
            f"logits (10), continuous mean (2) and log-std (2)"
        )
    return discriminator


def ensure_writable(folder):
    """Create `folder` and prove a file can be written there; else a UserError naming it."""
    try:
        os.makedirs(folder, exist_ok=True)
        # The longest name the run writes, so a path too long fails here and not after an epoch.
        probe = os.path.join(folder, ".write-probe-ckpt-9999.data-00000-of-00001.tmp")
        with open(probe, "w") as handle:
            handle.write("ok")
        os.remove(probe)
    except OSError as error:
        raise UserError(
            f"{folder}: cannot write there ({error.strerror or first_line(error)}); choose "
            f"another --out"
        ) from None


def check_free_space(folder, needed_bytes, what):
    """A UserError when `folder`'s disk has less than `needed_bytes` free."""
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise UserError(
            f"{folder}: {free / 1e6:.0f} MB free, {what} needs about {needed_bytes / 1e6:.0f} MB; "
            f"free some space and rerun the same command to continue"
        )


def remove_temporaries(paths):
    """Delete what interrupted writes left in a run folder: atomic_path's temporaries, and
    TensorFlow's temporary checkpoint files and folders. Returns what was removed."""
    patterns = [os.path.join(folder, ".*.tmp*") for folder in (*paths.folders(), paths.out)]
    patterns += [os.path.join(paths.checkpoints, name)
                 for name in ("*_temp", "*.tmp*", "checkpoint.tmp*", ".partial-*")]  # fmt: skip
    removed = []
    for path in sorted({p for pattern in patterns for p in glob.glob(pattern)}):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
        removed.append(path)
    return removed


class RunLock:
    """Exclusive use of a run folder by one process, held as an OS file lock: it ends with the
    process, so a killed run never leaves a lock that blocks the next one."""

    def __init__(self, path):
        self.path, self.handle = path, None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; a second run is not detected there
            return self
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            folder = os.path.dirname(self.path) or "."
            raise UserError(
                f"{folder}: {holder} is training in this folder; wait for it to finish, stop it, "
                f"or use another --out"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        self.handle.write(f"infogan.py (pid {os.getpid()} on {socket.gethostname()}, "
                          f"started {started})")  # fmt: skip
        self.handle.flush()
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.close()  # releases the lock; the file stays, harmless


def image_grid(images, rows, columns, pad=2):
    """Images (rows * columns, 28, 28[, 1]) in [-1, 1] -> one uint8 grid (H, W), row-major."""
    images = np.asarray(images).reshape(rows * columns, *np.asarray(images).shape[1:3])
    height, width = images.shape[1:3]
    pixels = np.clip((images + 1.0) * 127.5, 0, 255).astype(np.uint8)
    grid = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad), 255, np.uint8)
    for index, image in enumerate(pixels):
        row, column = divmod(index, columns)
        top, left = pad + row * (height + pad), pad + column * (width + pad)
        grid[top : top + height, left : left + width] = image
    return grid
