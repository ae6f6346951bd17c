"""Measure what a trained InfoGAN learned.

    python evaluate.py                                  # the committed model in model/
    python evaluate.py --model-dir runs/mnist_seed1      # a run folder (data set from its config)
    python evaluate.py --model-dir runs/fashion_mnist_seed0 --sweep-rows 100

Reads the run's generator and discriminator (D and Q heads) and writes <out>/evaluation.json,
<out>/evaluation.md and <out>/confusion_matrix.png (out: the run's figures/ folder):
- the categorical code against the classes of the 10,000 test images, read by Q: Hungarian
  (one-to-one) accuracy, majority-vote purity, NMI, ARI and the confusion matrix;
- generated purity: --per-code images per categorical value, labelled by a classifier of the
  data set that this script trains once and caches (model/classifiers/), Hungarian-mapped;
- Inception Score and Frechet distance in that classifier's feature space, beside the real-data
  references (IS of the test set; FD of train vs test images, the floor);
- the continuous codes as the sweeps show them: --sweep-rows rows per categorical value, each
  with its noise and the other code fixed, one code swept over [-1, 1]; along each row, the
  Spearman correlation of the code with the digit's slant, width and stroke thickness
  (Morpho-MNIST's measures, below); a row is clean when |rho| >= 0.8 with the majority sign;
  and the share of swept images the classifier still gives the row's class (sweep purity).
  The pooled correlation over random samples is kept as a secondary number.
"""

import argparse
import hashlib
import os
import sys

import numpy as np
from scipy.stats import rankdata

from utils import (
    CATEGORICAL_DIM,
    CLASS_NAMES,
    CONTINUOUS_DIM,
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    RunPaths,
    UserError,
    atomic_path,
    latent_vectors,
    load_dataset,
    load_discriminator,
    load_generator,
    load_keras_model,
    prior_parts,
    read_json,
    run_folder,
    save_figure,
    sweep_latents,
    to_model_range,
    write_json,
    write_text,
)

MEASURES = ("slant", "width", "thickness")
CLEAN_RHO = 0.8  # a sweep row is clean when |Spearman rho| >= this, with the majority sign
SWEEP_VALUES = np.linspace(-1.0, 1.0, 9)  # the training range of the continuous codes
CLASSIFIERS = os.path.join("model", "classifiers")

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


def purity(labels, clusters, classes=CATEGORICAL_DIM):
    """Accuracy when each cluster is labelled with its majority class (many-to-one)."""
    return confusion_matrix(labels, clusters, classes).max(axis=1).sum() / len(labels)


def _entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_information(labels, clusters, classes=CATEGORICAL_DIM):
    """I(labels; clusters) / mean(H(labels), H(clusters)) (arithmetic mean, as scikit-learn)."""
    joint = confusion_matrix(labels, clusters, classes).astype(float)
    h_clusters, h_labels = _entropy(joint.sum(1)), _entropy(joint.sum(0))
    mutual = h_clusters + h_labels - _entropy(joint.ravel())
    denominator = (h_clusters + h_labels) / 2
    return mutual / denominator if denominator > 0 else 1.0


def adjusted_rand_index(labels, clusters, classes=CATEGORICAL_DIM):
    joint = confusion_matrix(labels, clusters, classes).astype(float)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index, rows, columns = pairs(joint), pairs(joint.sum(1)), pairs(joint.sum(0))
    expected = rows * columns / pairs(np.array([joint.sum()]))
    maximum = (rows + columns) / 2
    return float((index - expected) / (maximum - expected)) if maximum != expected else 1.0


def inception_score(probabilities):
    """exp(E_x KL(p(y|x) || p(y))): 1 for a classifier that cannot tell, 10 at best here."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1)
    marginal = p.mean(0, keepdims=True)
    return float(np.exp((p * (np.log(p) - np.log(marginal))).sum(1).mean()))


def frechet_distance(features_a, features_b):
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of two feature sets."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr (S_a S_b)^1/2 = Tr (S_a^1/2 S_b S_a^1/2)^1/2, a symmetric form that stays real and
    # stable when ReLU features leave the covariances singular.
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(
        ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    )


def predict_codes(discriminator, images, batch_size=500):
    """Q's reading of uint8 images (N, 28, 28): categorical argmax (N,), continuous means (N, 2)."""
    categories, means = [], []
    for start in range(0, len(images), batch_size):
        batch = to_model_range(images[start : start + batch_size])
        _, categorical_logits, mean, _ = discriminator(batch, training=False)
        categories.append(np.argmax(np.asarray(categorical_logits), axis=-1))
        means.append(np.asarray(mean))
    return np.concatenate(categories), np.concatenate(means)


# ------------------------------------------------------------------------------ shape measures
# Slant, width and stroke thickness per image, after Morpho-MNIST (Castro et al. 2019,
# morphomnist/measure.py), in numpy and vectorized over the batch. Conventions: row 0 is the
# top of an image; x grows to the right and y UPWARDS; intensities in [0, 1] (uint8 / 255).
# Differences from Morpho-MNIST: no 4x upscaling before thinning, our own Zhang-Suen thinning,
# a percentile width and an end-corrected thickness (see image_measures).

_SQRT2 = np.sqrt(2.0)
_WIDTH_QUANTILES = (0.05, 0.95)  # width = distance between these quantiles / their gap
_MAX_ABS_SHEAR = 3.0  # |shear| cap used only for deshearing (width); slant is not capped
_CHUNK = 2048  # images per chunk, bounds the memory of the width computation


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------


def _to_unit_float(images):
    """Bring images to float32 (N, H, W) in [0, 1] so every measure sees one scale."""
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[-1] == 1:  # (N, H, W, 1) -> (N, H, W)
        x = x[..., 0]
    if x.ndim == 2:  # a single image (H, W) -> (1, H, W)
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W) or (N, H, W, 1), got {x.shape}")
    if x.dtype == bool:
        return x.astype(np.float32)
    is_int = np.issubdtype(x.dtype, np.integer)
    x = x.astype(np.float32)
    if x.size == 0:
        return x
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or inf")
    if x.min() < -1e-6:
        raise ValueError(
            "images have negative values; map generator output in [-1, 1] to [0, 1] first"
        )
    if is_int or x.max() > 1.5:  # uint8 scale, decided once for the whole batch
        x = x / np.float32(255.0)
    return x


# --------------------------------------------------------------------------------------
# Zhang-Suen thinning
# --------------------------------------------------------------------------------------


def _zhang_suen_luts():
    """Deletion lookup tables of both Zhang-Suen sub-iterations, indexed by neighbour code.

    Bit k of the code is neighbour P(k+2) of Zhang & Suen (1984): P2=N, P3=NE, P4=E,
    P5=SE, P6=S, P7=SW, P8=W, P9=NW.
    """
    lut1 = np.zeros(256, dtype=bool)
    lut2 = np.zeros(256, dtype=bool)
    for code in range(256):
        p = [(code >> k) & 1 for k in range(8)]  # p[0] = P2, ..., p[7] = P9
        p2, _, p4, _, p6, _, p8, _ = p
        b = sum(p)  # number of foreground neighbours
        a = sum(p[k] == 0 and p[(k + 1) % 8] == 1 for k in range(8))  # 0->1 transitions
        base = 2 <= b <= 6 and a == 1
        lut1[code] = base and p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
        lut2[code] = base and p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    return lut1, lut2


_ZS_LUT1, _ZS_LUT2 = _zhang_suen_luts()


def _neighbour_code(padded):
    """8-neighbour code of every interior pixel, so one table lookup decides deletion."""
    # padded: (n, H + 2, W + 2) uint8 in {0, 1}; returns (n, H, W) uint8
    c = padded[:, 1:-1, 1:-1]
    h, w = c.shape[1:]
    shifts = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # P2..P9
    code = np.zeros(c.shape, dtype=np.uint8)
    for k, (dr, dc) in enumerate(shifts):
        code |= padded[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] << np.uint8(k)
    return code


def zhang_suen_skeleton(binary, max_iter=30):
    """Zhang-Suen (1984) thinning of a whole batch at once, for the stroke-thickness measure.

    binary: (N, H, W) bool. Returns the (N, H, W) bool skeleton. Both sub-iterations are
    repeated until no pixel changes in any image, or for at most ``max_iter`` iterations
    (a 28x28 image needs at most ~14). Only images that still change are processed.
    Known property of the algorithm: isolated 2x2 blocks vanish completely.
    """
    return _delete_repeatedly(binary, [(_ZS_LUT1, True), (_ZS_LUT2, True)], max_iter)


def _delete_repeatedly(binary, passes, max_iter):
    """Delete the pixels that a pass's lookup table marks (within its mask) until no image
    changes: the loop shared by Zhang-Suen thinning and the staircase clean-up. passes:
    [(lut (256,) bool, mask (H, W) bool or True)]."""
    binary = np.asarray(binary, dtype=bool)
    n, h, w = binary.shape
    img = np.zeros((n, h + 2, w + 2), dtype=np.uint8)  # zero border: no wrap-around
    img[:, 1:-1, 1:-1] = binary
    active = np.flatnonzero(binary.reshape(n, -1).any(axis=1))
    for _ in range(max_iter):
        if active.size == 0:
            break
        sub = img[active]  # (n_active, H + 2, W + 2) copy
        changed = np.zeros(active.size, dtype=bool)
        for lut, mask in passes:
            inner = sub[:, 1:-1, 1:-1]  # view
            delete = lut[_neighbour_code(sub)] & (inner == 1) & mask  # (n_active, H, W)
            changed |= delete.any(axis=(1, 2))
            inner[delete] = 0
        img[active] = sub
        active = active[changed]
    return img[:, 1:-1, 1:-1].astype(bool)


def _simple_non_end_lut():
    """Table of 8-neighbour codes whose centre pixel is redundant in a thin skeleton.

    Redundant = a simple point (Yokoi 8-connectivity number 1: removing it changes no
    connectivity) with at least two neighbours (so it is not a line end). In a Zhang-Suen
    skeleton these are the corner pixels of 4-connected "staircases" on diagonal strokes.
    """
    lut = np.zeros(256, dtype=bool)
    for code in range(256):
        x = [(code >> k) & 1 for k in range(8)]  # N, NE, E, SE, S, SW, W, NW
        xb = [1 - v for v in x]
        c8 = sum(xb[k] - xb[k] * xb[(k + 1) % 8] * xb[(k + 2) % 8] for k in (0, 2, 4, 6))
        lut[code] = c8 == 1 and sum(x) >= 2
    return lut


_REDUNDANT_LUT = _simple_non_end_lut()


def remove_staircases(skel, max_iter=10):
    """Delete redundant staircase pixels so skeleton length is not inflated on diagonals.

    skel: (N, H, W) bool, e.g. from ``zhang_suen_skeleton``; returns (N, H, W) bool.
    Zhang-Suen leaves 4-connected staircases on diagonal strokes, which would count as
    2 orthogonal links instead of one sqrt(2) link per step. Redundant pixels (see
    ``_simple_non_end_lut``) are deleted in 4 interleaved subfields (row and column
    parity), so no two pixels deleted together are adjacent and connectivity is kept;
    line ends are never deleted.
    """
    h, w = np.shape(skel)[1:]
    rr, cc = np.mgrid[:h, :w]
    fields = [(rr % 2 == i) & (cc % 2 == j) for i in (0, 1) for j in (0, 1)]  # (H, W) each
    return _delete_repeatedly(skel, [(_REDUNDANT_LUT, field) for field in fields], max_iter)


def _skeleton_length_and_ends(skel):
    """Skeleton length (pixels) and number of ends, the two inputs of the thickness formula.

    skel: (N, H, W) bool. Length = number of horizontal/vertical links between 8-adjacent
    skeleton pixels + sqrt(2) * number of diagonal links; a diagonal link is skipped when
    one of the two pixels it cuts across is also in the skeleton (that corner is already
    covered by two orthogonal links, so counting it would double count a staircase).
    Ends = pixels with exactly one link + 2 per isolated pixel (a dot has two ends).
    Returns length (N,) float64, ends (N,) float64.
    """
    s = skel
    hor = s[:, :, :-1] & s[:, :, 1:]  # (N, H, W-1) link (r, c)-(r, c+1)
    ver = s[:, :-1, :] & s[:, 1:, :]  # (N, H-1, W) link (r, c)-(r+1, c)
    a, b = s[:, :-1, :-1], s[:, :-1, 1:]  # top-left, top-right of each 2x2 window
    c, d = s[:, 1:, :-1], s[:, 1:, 1:]  # bottom-left, bottom-right
    dia = a & d & ~b & ~c  # (N, H-1, W-1) link (r, c)-(r+1, c+1)
    anti = b & c & ~a & ~d  # (N, H-1, W-1) link (r, c+1)-(r+1, c)
    length = hor.sum(axis=(1, 2)) + ver.sum(axis=(1, 2))
    length = length + _SQRT2 * (dia.sum(axis=(1, 2)) + anti.sum(axis=(1, 2)))

    deg = np.zeros(s.shape, dtype=np.int16)  # (N, H, W) links per pixel
    deg[:, :, :-1] += hor
    deg[:, :, 1:] += hor
    deg[:, :-1, :] += ver
    deg[:, 1:, :] += ver
    deg[:, :-1, :-1] += dia
    deg[:, 1:, 1:] += dia
    deg[:, :-1, 1:] += anti
    deg[:, 1:, :-1] += anti
    ends = (s & (deg == 1)).sum(axis=(1, 2)) + 2 * (s & (deg == 0)).sum(axis=(1, 2))
    return length.astype(np.float64), ends.astype(np.float64)


# --------------------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------------------


def _slant_width_chunk(x):
    """Slant and width of one chunk; split out so memory stays bounded for big batches."""
    # x: (n, H, W) float32 in [0, 1]
    n, h, w = x.shape
    xs = np.arange(w, dtype=np.float64)  # (W,) x of each column
    ys = (h - 1) - np.arange(h, dtype=np.float64)  # (H,) y of each row, upwards
    rows = x.sum(axis=2, dtype=np.float64)  # (n, H) mass per row
    cols = x.sum(axis=1, dtype=np.float64)  # (n, W) mass per column
    m00 = rows.sum(axis=1)  # (n,)
    ok = m00 > 0
    safe = np.where(ok, m00, 1.0)
    xm = cols @ xs / safe  # (n,)
    ym = rows @ ys / safe  # (n,)
    mxy = (x.astype(np.float64) @ xs) @ ys  # (n, H) -> (n,): sum of I * x * y
    mu11 = mxy / safe - xm * ym  # (n,) normalised central moments
    mu02 = rows @ (ys**2) / safe - ym**2
    flat = mu02 <= 1e-9  # mass in a single row: no vertical extent, no lean
    shear = np.where(flat, 0.0, mu11 / np.where(flat, 1.0, mu02))  # dx/dy regression slope
    slant = np.arctan(shear)

    # Desheared x' = x - shear * (y - ym). Each pixel is a unit box [x' - .5, x' + .5];
    # its mass is split exactly over unit bins, then the CDF is read with linear
    # interpolation inside bins (exact for unsheared images).
    sh = np.clip(shear, -_MAX_ABS_SHEAR, _MAX_ABS_SHEAR)
    d = -sh[:, None] * (ys[None, :] - ym[:, None])  # (n, H) shift of each row
    # (n, H, W) left edge of each box in bin units; bins are pixel-centred (edges at
    # half-integers of x'), so an unsheared pixel falls exactly into one bin
    left = xs[None, None, :] + d[:, :, None]
    left -= np.floor(left.min(axis=(1, 2)))[:, None, None]  # >= 0 per image
    k = np.floor(left).astype(np.int64)  # (n, H, W) first bin touched
    f = left - k  # (n, H, W) share that spills into bin k + 1
    nbins = int(k.max()) + 2
    k += nbins * np.arange(n)[:, None, None]
    wts = x.astype(np.float64)
    prof = np.bincount(k.ravel(), weights=(wts * (1 - f)).ravel(), minlength=n * nbins)
    prof += np.bincount((k + 1).ravel(), weights=(wts * f).ravel(), minlength=n * nbins)
    prof = prof.reshape(n, nbins) / safe[:, None]  # (n, nbins) mass per bin, sums to 1
    cdf = np.cumsum(prof, axis=1)  # (n, nbins) CDF at right bin edges
    pos = []
    for q in _WIDTH_QUANTILES:
        b = np.argmax(cdf >= q - 1e-12, axis=1)  # (n,) bin holding quantile q
        prev = np.where(b > 0, cdf[np.arange(n), b - 1], 0.0)
        pb = np.maximum(prof[np.arange(n), b], 1e-300)
        pos.append(b + np.clip((q - prev) / pb, 0.0, 1.0))
    width = (pos[1] - pos[0]) / (_WIDTH_QUANTILES[1] - _WIDTH_QUANTILES[0])

    slant[~ok] = np.nan
    width[~ok] = np.nan
    return slant, width


def stroke_thickness(binary, max_iter=30):
    """Mean stroke thickness in pixels from area and skeleton, vectorized over the batch.

    binary: (N, H, W) bool. Skeleton = Zhang-Suen thinning + ``remove_staircases``.
    With A = number of foreground pixels, L = skeleton link length and e = number of
    skeleton ends (see ``_skeleton_length_and_ends``), the thickness t solves

        A = t * (L + e * (1 + t) / 2),

    i.e. area = width x length of a stroke whose length is the skeleton's, plus half a
    pixel (the end pixel itself) and half a stroke width (eaten by thinning) at every
    free end. For closed strokes (e = 0) this is Morpho-MNIST's A / L; without the end
    term a 5 x 12 bar would measure 60 / 6 = 10 instead of 5. An empty skeleton of a
    non-empty image is treated as a dot (e = 2, L = 0); an empty image gives NaN.
    Returns (N,) float64.
    """
    binary = np.asarray(binary, dtype=bool)
    area = binary.sum(axis=(1, 2)).astype(np.float64)  # (N,)
    skel = remove_staircases(zhang_suen_skeleton(binary, max_iter=max_iter))
    length, ends = _skeleton_length_and_ends(skel)  # (N,), (N,)
    ends = np.where((length == 0) & (ends == 0), 2.0, ends)
    lin = length + ends / 2.0  # linear coefficient of the quadratic (e/2) t^2 + lin t - A
    denom = lin + np.sqrt(lin**2 + 2.0 * ends * area)  # stable form of the positive root
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(area > 0, 2.0 * area / denom, np.nan)
    return t


def image_measures(images, threshold=0.5):
    """Slant, width and stroke thickness of every image, to correlate them with a latent code.

    images: (N, 28, 28) or (N, 28, 28, 1) (any H x W works); uint8 in [0, 255] or float in
    [0, 1]. Integer dtype, or a float batch whose max exceeds 1.5, is divided by 255.
    Float generator output in [-1, 1] must be mapped to [0, 1] by the caller; negative
    values raise ValueError. Returns a dict of float64 arrays of shape (N,):

    * "slant" (radians): arctan(mu11 / mu02) of the intensity-weighted central moments
      with x to the right and y UPWARDS; equivalently Morpho-MNIST's arctan(-mu11 / mu02)
      in row-down coordinates. It is the angle from vertical of the regression line of x
      on y, so a digit leaning right like "/" is positive and an upright bar is 0.
    * "width" (pixels): horizontal extent after removing the slant. The x coordinate is
      desheared, x' = x - shear * (y - mean_y) with shear = tan(slant) (capped at +-3
      here only), each pixel counted as a unit-wide box weighted by its intensity, and
      width = (q95 - q05) / 0.9 of that distribution: an upright solid rectangle w
      columns wide measures exactly w, a sheared one within ~6% of w (jagged edges);
      percentiles make it robust to a few stray pixels.
    * "thickness" (pixels): mean stroke width from the image binarized at
      ``>= threshold``, see ``stroke_thickness`` (Zhang-Suen skeleton, area / length with
      an end correction).

    Empty images (all zero) give NaN for all three (thickness: empty after binarizing).
    """
    x = _to_unit_float(images)  # (N, H, W) float32
    n = x.shape[0]
    slant = np.empty(n)
    width = np.empty(n)
    thick = np.empty(n)
    for i in range(0, n, _CHUNK):
        xc = x[i : i + _CHUNK]
        slant[i : i + _CHUNK], width[i : i + _CHUNK] = _slant_width_chunk(xc)
        thick[i : i + _CHUNK] = stroke_thickness(xc >= threshold)
    return {"slant": slant, "width": width, "thickness": thick}


# --------------------------------------------------------------------------------------
# Sweep statistics
# --------------------------------------------------------------------------------------


def _spearman_rows(code_values, measures):
    """Spearman rho of every row against the code, as Pearson on ranks (no row loop)."""
    # code_values: (V,), measures: (R, V) -> (R,)
    rc = rankdata(code_values)  # (V,)
    rm = rankdata(measures, axis=1)  # (R, V); a row with NaN becomes all NaN
    rc = rc - rc.mean()
    rm = rm - rm.mean(axis=1, keepdims=True)
    num = rm @ rc  # (R,)
    den = np.sqrt((rm**2).sum(axis=1) * (rc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    rho[~np.all(np.isfinite(measures), axis=1)] = np.nan
    return rho


def sweep_statistics(code_values, measures, categories=None, clean_threshold=0.8):
    """Summarize how consistently one measure follows a swept latent code across rows.

    code_values: (V,) swept code values (increasing). measures: (R, V), row r holds the
    measure of the V images that share category and noise and differ only in the code.
    categories: optional (R,) ints, the category of each row. Returns a dict:

    * "rho" (R,): Spearman correlation of each row with the code; a constant row gives 0,
      a row with any non-finite value gives NaN.
    * "majority_sign": +1 or -1, sign of the median finite rho (0 or no finite rho: +1).
    * "clean_rows": share of ALL rows whose rho has the majority sign and
      |rho| >= clean_threshold (NaN rows count as not clean).
    * "median_abs_rho": median of finite |rho| (NaN if none).
    * "median_abs_change": median over rows of |last - first measure|, how far the measure
      moves over the whole sweep, in its own unit (rows with a non-finite end left out).
    * with categories: "within_category_rho", the mean over categories of the Spearman
      rho between the code (repeated per row) and the measure pooled over that category's
      rows (non-finite points dropped), plus "category_rho" (C,) and "category_ids" (C,).
    """
    code_values = np.asarray(code_values, dtype=np.float64)
    measures = np.asarray(measures, dtype=np.float64)
    if measures.ndim == 1:
        measures = measures[None]
    r, v = measures.shape
    if code_values.shape != (v,):
        raise ValueError(f"code_values shape {code_values.shape} does not match ({v},)")
    rho = _spearman_rows(code_values, measures)  # (R,)
    change = np.abs(measures[:, -1] - measures[:, 0])  # (R,)
    finite = np.isfinite(rho)
    med = np.median(rho[finite]) if finite.any() else 0.0
    sign = 1 if med >= 0 else -1
    clean = finite & (np.sign(rho) == sign) & (np.abs(rho) >= clean_threshold)
    out = {
        "rho": rho,
        "majority_sign": sign,
        "clean_rows": float(clean.mean()) if r else np.nan,
        "median_abs_rho": float(np.median(np.abs(rho[finite]))) if finite.any() else np.nan,
        "median_abs_change": float(np.median(change[np.isfinite(change)]))
        if np.isfinite(change).any()
        else np.nan,
    }
    if categories is not None:
        categories = np.asarray(categories)
        if categories.shape != (r,):
            raise ValueError(f"categories shape {categories.shape} does not match ({r},)")
        ids = np.unique(categories)
        per_cat = np.empty(ids.size)
        for j, c in enumerate(ids):  # few categories: a loop is fine here
            m = measures[categories == c].ravel()  # (R_c * V,)
            code = np.tile(code_values, int((categories == c).sum()))  # (R_c * V,)
            keep = np.isfinite(m)
            per_cat[j] = _spearman_rows(code[keep], m[keep][None])[0] if keep.any() else np.nan
        out["within_category_rho"] = (
            float(np.nanmean(per_cat)) if np.isfinite(per_cat).any() else np.nan
        )
        out["category_rho"] = per_cat
        out["category_ids"] = ids
    return out


# ---------------------------------------------------------------------------------- classifier


def build_classifier():
    import keras
    from keras import layers

    image = keras.Input(shape=(28, 28, 1), name="image")
    x = layers.Conv2D(32, 3, activation="relu", name="conv1")(image)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Dropout(0.25, name="dropout1")(x)
    x = layers.Flatten(name="flatten")(x)
    features = layers.Dense(128, activation="relu", name="features")(x)
    x = layers.Dropout(0.5, name="dropout2")(features)
    logits = layers.Dense(10, name="logits")(x)
    return keras.Model(image, logits, name="classifier")


def classifier_path(dataset, x_train, y_train):
    """The cache file of the classifier of these training images: one per data set content."""
    digest = hashlib.sha1(x_train.tobytes() + y_train.tobytes()).hexdigest()[:8]
    return os.path.join(CLASSIFIERS, f"{dataset}_{digest}.keras")


def load_or_train_classifier(path, data, epochs):
    """The cached classifier, trained on the data set (and cached) first if `path` is absent."""
    import keras

    if os.path.exists(path):
        return load_keras_model(path, "classifier (delete it to retrain)")
    x_train, y_train, x_test, y_test = data
    print(f"training a classifier for {epochs} epochs (cached as {path})", flush=True)
    keras.utils.set_random_seed(0)
    classifier = build_classifier()
    classifier.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    classifier.fit(to_model_range(x_train), y_train, batch_size=128, epochs=epochs, verbose=2)
    accuracy = classifier.evaluate(to_model_range(x_test), y_test, verbose=0)[1]
    print(f"classifier test accuracy {accuracy:.4f}")
    with atomic_path(path) as temporary:
        classifier.save(temporary)
    return classifier


def classify(classifier, images, batch_size=1000):
    """Softmax probabilities (N, 10) and penultimate features (N, 128) for images in [-1, 1]."""
    import keras

    features_model = keras.Model(
        classifier.input, [classifier.get_layer("features").output, classifier.output]
    )
    features, logits = [], []
    for start in range(0, len(images), batch_size):
        f, logit = features_model(images[start : start + batch_size], training=False)
        features.append(np.asarray(f))
        logits.append(np.asarray(logit))
    logits = np.concatenate(logits)
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    return probabilities / probabilities.sum(1, keepdims=True), np.concatenate(features)


# -------------------------------------------------------------------------------- evaluation


def generate(generator, latents, batch_size=1000):
    """Images (N, 28, 28, 1) in [-1, 1] for latents (N, 74)."""
    return np.concatenate(
        [
            np.asarray(generator(latents[start : start + batch_size], training=False))
            for start in range(0, len(latents), batch_size)
        ]
    )


def spearman_table(codes, measures):
    """{code name: {measure: Spearman rho}} for codes (N, 2), pooled over all images."""
    from scipy.stats import spearmanr

    return {
        f"c{index + 1}": {
            name: float(spearmanr(codes[:, index], values, nan_policy="omit").statistic)
            for name, values in measures.items()
        }
        for index in range(codes.shape[1])
    }


def continuous_sweeps(generator, classifier, code_to_class, rows_per_category, seed):
    """For each continuous code: clean-row shares and within-category rho of every measure
    along sweeps over [-1, 1], and the sweep purity (share of swept images the classifier
    gives the row's class; code_to_class maps categorical values to classes)."""
    rows = rows_per_category * CATEGORICAL_DIM
    categories = np.repeat(np.arange(CATEGORICAL_DIM), rows_per_category)  # (R,)
    continuous, noise = prior_parts(rows, seed)  # the other code and the noise of each row
    report = {}
    for code_index in range(CONTINUOUS_DIM):
        latents = sweep_latents(code_index, SWEEP_VALUES, categories, noise,
                                other_codes=continuous[:, 1 - code_index])  # fmt: skip
        images = generate(generator, latents)  # (R * V, 28, 28, 1)
        measures = image_measures((images + 1.0) / 2.0)
        measures["slant"] = np.degrees(measures["slant"])  # turns are read in degrees
        entry = {}
        for name in MEASURES:
            stats = sweep_statistics(
                SWEEP_VALUES, measures[name].reshape(rows, -1), categories, CLEAN_RHO
            )
            entry[name] = {
                "clean_rows": stats["clean_rows"],
                "majority_sign": int(stats["majority_sign"]),
                "median_abs_rho": stats["median_abs_rho"],
                "median_abs_change": stats["median_abs_change"],
                "within_category_rho": stats["within_category_rho"],
            }
        labels = classify(classifier, images)[0].argmax(1).reshape(rows, -1)
        expected = np.array([code_to_class[c] for c in categories])[:, None]
        entry["sweep_purity"] = float((labels == expected).mean())
        report[f"c{code_index + 1}"] = entry
    report["rows"], report["values"] = rows, SWEEP_VALUES.tolist()
    return report


def code_roles(sweeps):
    """Which code is the rotation (slant) code and which the other style, read from the sweeps:
    the rotation code has the larger clean-row share for slant; the other code's style is the
    width or thickness measure with more clean rows. A turn is how many degrees the code moves
    the slant over its sweep (median row): a width code also moves the slant of a leaning digit
    monotonically, by a few degrees, where a rotation code turns it by tens."""
    rotation = max(("c1", "c2"), key=lambda code: sweeps[code]["slant"]["clean_rows"])
    other = "c2" if rotation == "c1" else "c1"
    style = max(("width", "thickness"), key=lambda name: sweeps[other][name]["clean_rows"])
    return {
        "rotation_code": rotation,
        "rotation_clean_rows": sweeps[rotation]["slant"]["clean_rows"],
        "style_code": other,
        "style_measure": style,
        "style_clean_rows": sweeps[other][style]["clean_rows"],
        "style_code_slant_clean_rows": sweeps[other]["slant"]["clean_rows"],
        "rotation_turn_degrees": sweeps[rotation]["slant"]["median_abs_change"],
        "style_code_turn_degrees": sweeps[other]["slant"]["median_abs_change"],
        "sweep_purity": min(sweeps[code]["sweep_purity"] for code in ("c1", "c2")),
    }


def run_config(model_dir):
    """The run's config.json beside its models, if any (an empty dict for other folders)."""
    path = os.path.join(model_dir, "config.json")
    return read_json(path, "run configuration") if os.path.exists(path) else {}


def shown_path(path):
    """`path` relative to the working folder when it lies inside it, so that a committed report
    names `model`, not one machine's absolute folders."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # Windows: on another drive than the working folder
        return path
    return path if relative.startswith("..") else relative


def evaluate(args):
    generator = load_generator(os.path.join(args.model_dir, GENERATOR_FILE))
    discriminator = load_discriminator(os.path.join(args.model_dir, DISCRIMINATOR_FILE))
    config = run_config(args.model_dir)
    dataset = args.dataset or config.get("dataset", "mnist")
    data = load_dataset(dataset, args.data or config.get("data") or None)
    x_train, y_train, x_test, y_test = data
    report = {
        "model_dir": shown_path(args.model_dir),
        "dataset": dataset,
        "classes": CLASS_NAMES[dataset],
    }
    rng = np.random.default_rng(args.seed)

    # Q's categorical code on the real test images.
    clusters, q_codes = predict_codes(discriminator, x_test)
    accuracy, mapping = cluster_accuracy(y_test, clusters)
    report["categorical"] = {
        "test_images": len(y_test),
        "hungarian_accuracy": float(accuracy),
        "purity": float(purity(y_test, clusters)),
        "nmi": normalized_mutual_information(y_test, clusters),
        "ari": adjusted_rand_index(y_test, clusters),
        "code_to_class": {str(k): int(v) for k, v in sorted(mapping.items())},
        "confusion": confusion_matrix(y_test, clusters).tolist(),  # [code][class]
    }

    path = args.classifier or classifier_path(dataset, x_train, y_train)
    classifier = load_or_train_classifier(path, data, args.classifier_epochs)
    test_probabilities, test_features = classify(classifier, to_model_range(x_test))
    report["classifier"] = {
        "path": path,
        "test_accuracy": float((test_probabilities.argmax(1) == y_test).mean()),
    }

    # Generated purity and sample quality: per_code images of each categorical value.
    categories = np.repeat(np.arange(CATEGORICAL_DIM), args.per_code)
    continuous, noise = prior_parts(len(categories), args.seed)
    images = generate(generator, latent_vectors(categories, continuous, noise))
    probabilities, features = classify(classifier, images)
    generated_accuracy, generated_mapping = cluster_accuracy(probabilities.argmax(1), categories)
    reference = rng.choice(len(x_train), size=min(len(x_train), len(x_test)), replace=False)
    _, train_features = classify(classifier, to_model_range(x_train[reference]))
    distance = frechet_distance(features, test_features)
    floor = frechet_distance(train_features, test_features)
    report["generated"] = {
        "images": len(images),
        "purity_hungarian": float(generated_accuracy),
        "code_to_class": {str(k): int(v) for k, v in sorted(generated_mapping.items())},
        "inception_score": inception_score(probabilities),
        "inception_score_test_set": inception_score(test_probabilities),
        "frechet_distance": distance,
        "frechet_distance_train_vs_test": floor,
        "frechet_distance_over_floor": distance / floor,
    }

    # The continuous codes: sweeps (the headline) and pooled correlations (secondary).
    report["sweeps"] = continuous_sweeps(
        generator, classifier, generated_mapping, args.sweep_rows, args.seed + 1
    )
    report["code_roles"] = code_roles(report["sweeps"])
    report["continuous_pooled"] = {
        "generated": spearman_table(continuous, image_measures((images + 1.0) / 2.0)),
        "q_on_test": spearman_table(q_codes, image_measures(x_test)),
    }
    report["settings"] = {
        "per_code": args.per_code,
        "sweep_rows_per_category": args.sweep_rows,
        "seed": args.seed,
    }
    return report


# Published unsupervised accuracy to read ours against, per data set.
ACCURACY_REFERENCE = {
    "mnist": "paper about 0.95",
    "fashion_mnist": "ClusterGAN 0.61 (10 runs)",
}


def markdown(report):
    categorical, generated = report["categorical"], report["generated"]
    roles, sweeps = report["code_roles"], report["sweeps"]
    lines = [
        f"Evaluation of `{report['model_dir']}` ({report['dataset']})",
        "",
        "| metric | value | reference |",
        "|---|---|---|",
        f"| categorical accuracy (Hungarian, {categorical['test_images']} test images) "
        f"| {categorical['hungarian_accuracy']:.4f} "
        f"| {ACCURACY_REFERENCE.get(report['dataset'], '')} |",
        f"| purity (majority vote) / NMI / ARI | {categorical['purity']:.4f} / "
        f"{categorical['nmi']:.4f} / {categorical['ari']:.4f} | |",
        f"| generated purity (Hungarian, {generated['images']} images) "
        f"| {generated['purity_hungarian']:.4f} | |",
        f"| Inception Score (classifier) | {generated['inception_score']:.3f} "
        f"| test set {generated['inception_score_test_set']:.3f} |",
        f"| Frechet distance (classifier features) | {generated['frechet_distance']:.3f} "
        f"({generated['frechet_distance_over_floor']:.2f}x floor) "
        f"| floor: train vs test {generated['frechet_distance_train_vs_test']:.3f} |",
        f"| rotation code: {roles['rotation_code']}, clean slant rows (turn) "
        f"| {roles['rotation_clean_rows']:.1%} ({roles['rotation_turn_degrees']:.1f} deg) | |",
        f"| other code: {roles['style_code']}, clean {roles['style_measure']} rows "
        f"(its clean slant rows, turn) | {roles['style_clean_rows']:.1%} "
        f"({roles['style_code_slant_clean_rows']:.1%}, "
        f"{roles['style_code_turn_degrees']:.1f} deg) | |",
        f"| sweep purity (worst code) | {roles['sweep_purity']:.4f} | |",
        f"| classifier test accuracy | {report['classifier']['test_accuracy']:.4f} | |",
        "",
        f"Sweeps: {sweeps['rows']} rows (noise and the other code fixed), each code over "
        f"[-1, 1]; share of clean rows (|Spearman| >= {CLEAN_RHO} with the majority sign), "
        "that sign, the within-category correlation, and the median change over the sweep "
        "(slant in degrees, width and thickness in pixels):",
        "",
        "| code | " + " | ".join(MEASURES) + " | sweep purity |",
        "|---|" + "---|" * (len(MEASURES) + 1),
    ]
    for code in ("c1", "c2"):
        cells = [
            f"{sweeps[code][m]['clean_rows']:.1%} ({sweeps[code][m]['majority_sign']:+d}), "
            f"{sweeps[code][m]['within_category_rho']:+.2f}, "
            f"{sweeps[code][m]['median_abs_change']:.1f}"
            for m in MEASURES
        ]
        lines.append(
            f"| {code} | " + " | ".join(cells) + f" | {sweeps[code]['sweep_purity']:.4f} |"
        )
    lines += [
        "",
        "Pooled Spearman correlation of the codes with the measures (secondary):",
        "",
        "| code | where | " + " | ".join(MEASURES) + " |",
        "|---|---|" + "---|" * len(MEASURES),
    ]
    for where, key in [("generated", "generated"), ("Q on test", "q_on_test")]:
        for code, row in report["continuous_pooled"][key].items():
            values = " | ".join(f"{row[m]:+.3f}" for m in MEASURES)
            lines.append(f"| {code} | {where} | {values} |")
    return "\n".join(lines) + "\n"


def plot_confusion(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    confusion = np.array(report["categorical"]["confusion"])
    mapping, classes = report["categorical"]["code_to_class"], report["classes"]
    order = sorted(range(CATEGORICAL_DIM), key=lambda code: mapping[str(code)])
    figure, axis = plt.subplots(figsize=(6.8, 5.2))
    sns.heatmap(
        confusion[order],
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        ax=axis,
        xticklabels=classes,
        yticklabels=[f"code {c} -> {classes[mapping[str(c)]]}" for c in order],
        annot_kws={"fontsize": 7},
    )
    axis.set(xlabel="true class", ylabel="categorical code (Q's argmax)")
    axis.set_title(
        f"Test set: Hungarian accuracy {report['categorical']['hungarian_accuracy']:.4f}",
        fontsize=10,
    )
    figure.tight_layout()
    save_figure(figure, path)


def write_outputs(report, out):
    write_json(report, os.path.join(out, "evaluation.json"))
    write_text(markdown(report), os.path.join(out, "evaluation.md"))
    plot_confusion(report, os.path.join(out, "confusion_matrix.png"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", default="model", help="a run folder or its model/ folder")
    parser.add_argument("--out", default="", help="report folder (default: the run's figures/)")
    parser.add_argument("--dataset", default="", help="default: the run's (config.json)")
    parser.add_argument("--data", default="", help="a data file or folder, as infogan.py --data")
    parser.add_argument("--classifier", default="", help="classifier file (default: cached)")
    parser.add_argument("--classifier-epochs", type=int, default=5, help="if trained here")
    parser.add_argument("--per-code", type=int, default=1000, help="images per categorical value")
    parser.add_argument(
        "--sweep-rows", type=int, default=50, help="sweep rows per categorical value"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated samples")
    args = parser.parse_args(argv)
    if min(args.per_code, args.sweep_rows, args.classifier_epochs) < 1:
        raise UserError("--per-code, --sweep-rows and --classifier-epochs must be >= 1")
    if args.dataset and args.dataset not in CLASS_NAMES:
        raise UserError(f"--dataset must be one of {', '.join(CLASS_NAMES)}, got {args.dataset!r}")
    run = run_folder(args.model_dir)
    args.model_dir, args.out = RunPaths(run).model, args.out or RunPaths(run).figures
    return args


def main(argv=None):
    try:
        args = parse_args(argv)
        report = evaluate(args)
        write_outputs(report, args.out)
    except UserError as error:
        sys.exit(f"error: {error}")
    print(markdown(report))
    print(f"wrote {os.path.join(args.out, 'evaluation.json')}, evaluation.md, confusion_matrix.png")


if __name__ == "__main__":
    main()
