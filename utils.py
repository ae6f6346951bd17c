"""Helpers shared by training, evaluation and the generate scripts: data, latents, images, files.

Everything here is a plain function that the tests call directly.
"""

import contextlib
import hashlib
import os
import sys
import tempfile
import zipfile

import numpy as np

from model import CATEGORICAL_DIM, CONTINUOUS_DIM, NOISE_DIM

KERAS_CACHE_MNIST = os.path.join(os.path.expanduser("~"), ".keras", "datasets", "mnist.npz")
MNIST_ARRAYS = {  # name: (shape after the first axis, dtype)
    "x_train": ((28, 28), np.uint8),
    "y_train": ((), np.uint8),
    "x_test": ((28, 28), np.uint8),
    "y_test": ((), np.uint8),
}
PASS_A_FILE = "pass a Keras-layout mnist.npz with --data PATH"
GENERATOR_FILE = "infogan_model_generator.keras"
DISCRIMINATOR_FILE = "infogan_model_discriminator.keras"


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


# ------------------------------------------------------------------------ precision and memory


PRECISIONS = ("auto", "float32", "mixed_bfloat16")


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
    tensor cores (compute capability 8.0+) or a CPU with bf16 matmul, else float32. `precision`
    is one of PRECISIONS (the callers' option parsing checks that)."""
    if precision != "auto":
        return precision
    if gpu_compute_capabilities:
        return "mixed_bfloat16" if min(gpu_compute_capabilities) >= (8, 0) else "float32"
    if cpu_bf16 is None:
        cpu_bf16 = cpu_has_bf16_matmul()
    return "mixed_bfloat16" if cpu_bf16 else "float32"


def peak_rss_mb():
    """Peak resident memory of this process so far, in MB (10^6 bytes); None where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes there, KiB here


# ---------------------------------------------------------------------------------------- data


def load_mnist(path=None):
    """MNIST as uint8 arrays (x_train (60000, 28, 28), y_train, x_test, y_test).

    Source, in order: `path`; the Keras cache file; keras.datasets.mnist.load_data() (downloads).
    """
    if path is not None:
        return read_mnist_npz(path)
    if os.path.exists(KERAS_CACHE_MNIST):
        return read_mnist_npz(KERAS_CACHE_MNIST)
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # offline: urllib/socket errors of many kinds
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"MNIST is not in the Keras cache ({KERAS_CACHE_MNIST}) and could not be downloaded "
            f"({first_line}); {PASS_A_FILE}"
        ) from None
    return x_train, y_train, x_test, y_test


def read_mnist_npz(path):
    """Read and validate a Keras-layout mnist.npz; any problem is a UserError naming the file."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file; {PASS_A_FILE}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in MNIST_ARRAYS if name not in npz.files]
            if missing:
                raise UserError(
                    f"{path}: not a Keras-layout MNIST file, missing arrays {missing} "
                    f"(found {sorted(npz.files)}); {PASS_A_FILE}"
                )
            arrays = {name: npz[name] for name in MNIST_ARRAYS}
    except UserError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise UserError(
            f"{path}: cannot be read as an .npz file ({type(error).__name__}: {error}); "
            f"the file may be truncated or of another format; {PASS_A_FILE}"
        ) from None
    for name, (item_shape, dtype) in MNIST_ARRAYS.items():
        array = arrays[name]
        if array.ndim != 1 + len(item_shape) or array.shape[1:] != item_shape or not len(array):
            want = "(N, " + ", ".join(map(str, item_shape)) + ")" if item_shape else "(N,)"
            raise UserError(f"{path}: array {name} has shape {array.shape}, expected {want}")
        if array.dtype != dtype:
            raise UserError(f"{path}: array {name} has dtype {array.dtype}, expected uint8")
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(images) != len(labels):
            raise UserError(
                f"{path}: x_{split} has {len(images)} images but y_{split} has {len(labels)} labels"
            )
        if labels.max() >= CATEGORICAL_DIM:
            raise UserError(f"{path}: y_{split} holds label {labels.max()}, expected 0..9")
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def to_model_range(images):
    """uint8 (N, 28, 28) in [0, 255] -> float32 (N, 28, 28, 1) in [-1, 1] (the tanh range)."""
    return (np.asarray(images, np.float32)[..., None] / 127.5) - 1.0


# ------------------------------------------------------------------------------------- latents


def split_seed(seed, count, salt=None):
    """`count` stateless seeds (2,) int32 derived from the stateless seed `seed`; with `salt`, a
    different family. The same split as tfp.random.split_seed (the tests check it bit for bit),
    written out so that the training process need not import TFP, which also loads tf_keras
    (about 64 MB resident)."""
    import tensorflow as tf

    seed = tf.cast(seed, tf.int32)  # tf.random.Generator.make_seeds gives int64
    if salt is not None:
        salt = int(hashlib.sha512(salt.encode("utf-8")).hexdigest(), 16) % (2**31 - 1)
        seed = tf.bitwise.bitwise_xor(seed, tf.constant([salt, 0], tf.int32))
    seeds = tf.random.stateless_uniform([count, 2], seed, minval=None, maxval=None, dtype=tf.int32)
    return tf.unstack(seeds)


def sample_latent(batch_size, seed):
    """Draw the priors: a uniform 10-way code, and Uniform(-1, 1) continuous codes and noise.

    Returns categorical_code (B, 10) one-hot, continuous_codes (B, 2), noise (B, 62): the same
    draws as TFP's OneHotCategorical(logits=zeros).sample and Uniform(-1, 1).sample with the
    same seeds (the tests check it).

    `seed` is a stateless seed (two int32 values): the same seed gives the same draw, in eager
    code and inside tf.function alike.
    """
    import tensorflow as tf

    categorical_seed, continuous_seed, noise_seed = split_seed(seed, 3)
    category = tf.random.stateless_categorical(
        tf.zeros([1, CATEGORICAL_DIM]), batch_size, categorical_seed
    )[0]  # (B,)
    categorical_code = tf.one_hot(category, CATEGORICAL_DIM, dtype=tf.float32)

    def uniform(shape, seed):  # low + (high - low) * u, as TFP computes it
        return -1.0 + 2.0 * tf.random.stateless_uniform(shape, seed)

    continuous_codes = uniform([batch_size, CONTINUOUS_DIM], continuous_seed)
    noise = uniform([batch_size, NOISE_DIM], noise_seed)
    return categorical_code, continuous_codes, noise


def join_latent(categorical_code, continuous_codes, noise):
    """The generator's input (B, 74) in the order of model.py's slices."""
    import tensorflow as tf

    return tf.concat([categorical_code, continuous_codes, noise], axis=-1)


def random_affine(images, seed, max_degrees=15.0, x_scale=0.2, y_scale=0.1, max_shift=2.0):
    """Each image (B, 28, 28, 1) in [-1, 1] rotated by up to `max_degrees`, stretched by up to
    1 +- `x_scale` across and 1 +- `y_scale` down, and shifted by up to `max_shift` pixels, all
    drawn uniformly per image; the background stays -1. Gradients reach the images through
    TensorFlow's registered gradient, which warps them back with the inverse motion (an
    approximation of the exact adjoint: it leaves out the stretch's area change, a factor
    between 0.72 and 1.39).

    `seed` is a stateless seed, salted so that it never repeats sample_latent's draws."""
    import tensorflow as tf

    batch_size = tf.shape(images)[0]
    angle_seed, scale_seed, shift_seed = split_seed(seed, 3, salt="random_affine")
    angle = tf.random.stateless_uniform([batch_size], angle_seed, -1.0, 1.0) * (
        max_degrees * np.pi / 180.0
    )
    scale = 1.0 + tf.random.stateless_uniform([batch_size, 2], scale_seed, -1.0, 1.0) * [
        x_scale,
        y_scale,
    ]
    shift = tf.random.stateless_uniform([batch_size, 2], shift_seed, -max_shift, max_shift)
    # The op maps each OUTPUT pixel (x, y) to the input point M (x, y) + offset: M rotates and
    # divides by the stretch about the image centre, and the offset moves the result.
    cos, sin = tf.cos(angle), tf.sin(angle)
    inverse_x, inverse_y = 1.0 / scale[:, 0], 1.0 / scale[:, 1]
    m00, m01 = cos * inverse_x, -sin * inverse_x
    m10, m11 = sin * inverse_y, cos * inverse_y
    centre = 13.5
    transforms = tf.stack(
        [
            m00,
            m01,
            centre - centre * (m00 + m01) - shift[:, 0],
            m10,
            m11,
            centre - centre * (m10 + m11) - shift[:, 1],
            tf.zeros_like(angle),
            tf.zeros_like(angle),
        ],
        axis=1,
    )
    # The output size as a constant where it is known: computed at run time, it left the step's
    # graph with unknown image sizes, and TF's graph optimizer (its "remapper") then failed on the
    # whole step and logged an error.
    images = tf.cast(images, tf.float32)
    size = images.shape[1:3]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=size if size.is_fully_defined() else tf.shape(images)[1:3],
        fill_value=-1.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def fixed_noise(count, seed):
    """`count` noise vectors (count, 62) from the prior, always the same for the same seed."""
    return sample_latent(count, [seed, 1])[2].numpy()


def category_grid_latent(columns, seed):
    """Latents (10 * columns, 74) for the per-epoch grid: row = categorical value, column = one
    fixed noise draw shared by the whole column, continuous codes at 0."""
    noise = fixed_noise(columns, seed)  # (columns, 62)
    rows = []
    for category in range(CATEGORICAL_DIM):
        one_hot = np.zeros((columns, CATEGORICAL_DIM), np.float32)
        one_hot[:, category] = 1.0
        rows.append(
            np.concatenate([one_hot, np.zeros((columns, CONTINUOUS_DIM), np.float32), noise], 1)
        )
    return np.concatenate(rows, 0)


def latent_sweep(code_index, values, seed):
    """Latents (10 * len(values), 74): row = categorical value, column = continuous code
    `code_index` set to each of `values`, the other code at 0, and the noise FIXED along each row
    (one draw per row), so a row shows the effect of that code alone."""
    values = np.asarray(values, np.float32)
    noise = fixed_noise(CATEGORICAL_DIM, seed)  # (10, 62): one per row
    latents = np.zeros(
        (CATEGORICAL_DIM, len(values), CATEGORICAL_DIM + CONTINUOUS_DIM + NOISE_DIM),
        np.float32,
    )
    for category in range(CATEGORICAL_DIM):
        latents[category, :, category] = 1.0
        latents[category, :, CATEGORICAL_DIM + code_index] = values
        latents[category, :, CATEGORICAL_DIM + CONTINUOUS_DIM :] = noise[category]
    return latents.reshape(-1, latents.shape[-1])


def load_keras_model(path, what):
    """A saved .keras model; a missing or unreadable file is a UserError naming it."""
    import keras

    if not os.path.isfile(path):
        raise UserError(f"{path}: no such {what} file; train one with `python infogan.py`")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a damaged or foreign file
        first_line = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise UserError(f"{path}: not a loadable .keras {what} ({first_line})") from None


# -------------------------------------------------------------------------------------- images


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


def save_png(array, path, scale=1):
    """Write a uint8 image array as PNG atomically, upscaled by `scale` (nearest neighbour)."""
    from PIL import Image

    if scale > 1:
        array = np.kron(array, np.ones((scale, scale), np.uint8))
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); rename it onto `path` on success, so a
    crash never leaves a half-written file."""
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


# ------------------------------------------------------------------------------------- metrics


def confusion_matrix(labels, clusters, classes=CATEGORICAL_DIM):
    """counts[cluster, label] of how often each cluster id meets each true label."""
    counts = np.zeros((classes, classes), np.int64)
    np.add.at(counts, (np.asarray(clusters), np.asarray(labels)), 1)
    return counts


def cluster_accuracy(labels, clusters, classes=CATEGORICAL_DIM):
    """Accuracy of the best one-to-one map cluster -> label (Hungarian algorithm), and that map."""
    from scipy.optimize import linear_sum_assignment

    counts = confusion_matrix(labels, clusters, classes)
    cluster_ids, label_ids = linear_sum_assignment(-counts)
    mapping = dict(zip(cluster_ids.tolist(), label_ids.tolist(), strict=True))
    return counts[cluster_ids, label_ids].sum() / max(len(labels), 1), mapping


def predict_codes(discriminator, images, batch_size=250):
    """Q's reading of uint8 images (N, 28, 28), in batches small enough that the per-epoch
    readout adds ~30 MB to the training process (batches of 1,000 added ~150 MB).

    Returns the categorical argmax (N,) and the continuous means (N, 2)."""
    categories, means = [], []
    for start in range(0, len(images), batch_size):
        batch = to_model_range(images[start : start + batch_size])
        _, categorical_logits, mean, _ = discriminator(batch, training=False)
        categories.append(np.argmax(np.asarray(categorical_logits), axis=-1))
        means.append(np.asarray(mean))
    return np.concatenate(categories), np.concatenate(means)
