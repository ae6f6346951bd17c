"""Tests of measures.py on synthetic shapes whose slant, width and stroke width are known."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import spearmanr

from evaluate import (
    _skeleton_length_and_ends,
    image_measures,
    remove_staircases,
    stroke_thickness,
    sweep_statistics,
    zhang_suen_skeleton,
)

H = W = 28


# ---------------------------------------------------------------------------------------
# Shape helpers (row 0 is the top of the image)
# ---------------------------------------------------------------------------------------


def bar(thickness, length, vertical=False):
    """Solid axis-aligned bar centred in the image, (28, 28) float in {0, 1}."""
    im = np.zeros((H, W))
    r0, c0 = 14 - thickness // 2, 14 - length // 2
    im[r0 : r0 + thickness, c0 : c0 + length] = 1.0
    return im.T.copy() if vertical else im


def parallelogram(width, height, shear):
    """Rectangle width x height whose rows shift right by `shear` px per row UP (like "/")."""
    im = np.zeros((H, W))
    top = 14 - height // 2
    rows = np.arange(top, top + height)
    y = (H - 1) - rows  # upwards
    for r, yy in zip(rows, y, strict=True):
        c0 = round(14 - width / 2 + shear * (yy - y.mean()))
        im[r, max(c0, 0) : max(c0 + width, 0)] = 1.0
    return im


def ring(thickness, radius=9.0):
    """Annulus whose radial extent is `thickness` px, (28, 28) float in {0, 1}."""
    r, c = np.mgrid[:H, :W]
    d = np.hypot(r - 13.5, c - 13.5)
    return ((d >= radius - thickness / 2) & (d < radius + thickness / 2)).astype(float)


def ell(thickness, arm_down=18, arm_right=14):
    """An "L": a vertical arm and a horizontal foot, both `thickness` px wide."""
    im = np.zeros((H, W))
    im[4 : 4 + arm_down, 5 : 5 + thickness] = 1.0
    im[4 + arm_down - thickness : 4 + arm_down, 5 : 5 + arm_right] = 1.0
    return im


# ---------------------------------------------------------------------------------------
# Slant
# ---------------------------------------------------------------------------------------


def test_upright_bar_has_zero_slant():
    m = image_measures(np.stack([bar(3, 20, vertical=True), bar(4, 18)]))
    np.testing.assert_allclose(m["slant"], 0.0, atol=1e-9)


def test_leaning_right_is_positive():
    # "/" drawn explicitly in row coordinates: the top rows (small row index) lie to the right
    im = np.zeros((H, W))
    for r in range(4, 24):
        c = 24 - (r - 4) // 2
        im[r, c - 1 : c + 2] = 1.0
    m = image_measures(np.stack([im, im[:, ::-1]]))  # "/" and its mirror "\"
    assert m["slant"][0] > 0.3
    assert m["slant"][1] < -0.3
    assert m["slant"][0] == pytest.approx(-m["slant"][1])


def test_slant_matches_known_shear_and_order():
    shears = np.array([-0.6, -0.3, -0.1, 0.0, 0.15, 0.3, 0.5])
    ims = np.stack([parallelogram(4, 20, s) for s in shears])
    slant = image_measures(ims)["slant"]
    np.testing.assert_allclose(slant, np.arctan(shears), atol=0.04)
    assert np.all(np.diff(slant) > 0)
    np.testing.assert_array_equal(np.sign(slant), np.sign(shears))


# ---------------------------------------------------------------------------------------
# Width
# ---------------------------------------------------------------------------------------


def test_width_of_upright_rectangles_in_pixels():
    widths = [3, 6, 10, 16]
    m = image_measures(np.stack([parallelogram(w, 18, 0.0) for w in widths]))
    np.testing.assert_allclose(m["width"], widths, atol=1e-6)
    assert np.all(np.diff(m["width"]) > 0)


@pytest.mark.parametrize("shear", [-0.5, -0.25, 0.2, 0.4, 0.6])
def test_shear_barely_changes_width(shear):
    for w in (4, 8):
        upright, sheared = image_measures(
            np.stack([parallelogram(w, 20, 0.0), parallelogram(w, 20, shear)])
        )["width"]
        assert abs(sheared - upright) <= 0.15 * upright


def test_width_robust_to_a_stray_pixel():
    im = parallelogram(6, 18, 0.0)
    noisy = im.copy()
    noisy[2, 0] = 0.5  # one faint far-away speck
    a, b = image_measures(np.stack([im, noisy]))["width"]
    assert abs(b - a) < 1.0


# ---------------------------------------------------------------------------------------
# Thickness and skeleton
# ---------------------------------------------------------------------------------------

WIDTHS = [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "shape",
    [
        lambda t: bar(t, 20),
        lambda t: bar(t, 12),
        lambda t: bar(t, 20, vertical=True),
        lambda t: ring(t),
        lambda t: ell(t),
    ],
    ids=["bar20", "bar12", "vbar20", "ring", "ell"],
)
def test_thickness_close_to_stroke_width_and_monotonic(shape):
    t = stroke_thickness(np.stack([shape(w) for w in WIDTHS]) >= 0.5)
    assert np.all(np.diff(t) > 0), t
    np.testing.assert_allclose(t[1:], WIDTHS[1:], atol=0.6)
    assert abs(t[0] - 1) < 0.3


def test_thickness_of_axis_aligned_bars_is_exact():
    # a thinned w x n bar loses (w + 1) / 2 px of skeleton at each end; the end correction
    # accounts for exactly that, so these measure w to rounding error
    for w in (2, 3, 4, 5, 6):
        for n in (12, 20):
            t = stroke_thickness(np.stack([bar(w, n), bar(w, n, vertical=True)]) >= 0.5)
            np.testing.assert_allclose(t, w, atol=0.02)


def test_skeleton_length_and_ends_on_hand_made_skeletons():
    s = np.zeros((4, H, W), dtype=bool)
    s[0, 5, 3:13] = True  # straight line of 10 px: 9 links, 2 ends
    s[1, np.arange(4, 12), np.arange(4, 12)] = True  # diagonal of 8 px: 7 sqrt(2) links
    s[2, 5, 5:8] = True  # corner: (5,5)-(5,6)-(5,7) and (6,7) below the end
    s[2, 6, 7] = True
    s[3, 9, 9] = True  # a dot
    length, ends = _skeleton_length_and_ends(s)
    np.testing.assert_allclose(length, [9.0, 7 * np.sqrt(2), 3.0, 0.0])
    np.testing.assert_allclose(ends, [2, 2, 2, 2])


def test_thickness_nearly_independent_of_length():
    for w in (2, 3, 5):
        t = stroke_thickness(np.stack([bar(w, n) for n in (10, 14, 20, 26)]) >= 0.5)
        assert np.ptp(t) < 0.25, (w, t)


def test_thickness_from_image_measures_uses_threshold():
    im = bar(4, 20) * 0.6  # above 0.5: whole bar is foreground
    im[12:14] = 0.4  # two rows fall below the threshold
    m = image_measures(np.stack([bar(4, 20), im]))
    assert m["thickness"][0] == pytest.approx(4.0, abs=0.3)
    assert m["thickness"][1] == pytest.approx(2.0, abs=0.3)


def test_empty_images_give_nan():
    m = image_measures(np.zeros((2, H, W), dtype=np.uint8))
    for v in m.values():
        assert v.shape == (2,) and np.all(np.isnan(v))


def test_zhang_suen_bar_is_one_pixel_thick_and_long():
    im = bar(5, 20) >= 0.5
    skel = zhang_suen_skeleton(im[None])[0]
    assert skel.dtype == bool and skel.shape == (H, W)
    assert np.all(im[skel])  # inside the shape
    assert skel.any(axis=1).sum() == 1  # a single row ...
    assert skel.sum(axis=0).max() == 1  # ... one pixel per column
    cols = np.flatnonzero(skel.any(axis=0))
    assert np.all(np.diff(cols) == 1)  # contiguous
    assert 20 - 5 - 1 <= cols.size <= 20  # about as long as the bar


def test_zhang_suen_batch_equals_single_and_is_idempotent():
    ims = np.stack([bar(5, 20), ring(3), ell(4), np.zeros((H, W)), bar(2, 26, True)]) >= 0.5
    batch = zhang_suen_skeleton(ims)
    for i in range(len(ims)):
        np.testing.assert_array_equal(batch[i], zhang_suen_skeleton(ims[i : i + 1])[0])
    np.testing.assert_array_equal(zhang_suen_skeleton(batch), batch)
    assert not batch[3].any()


def test_staircase_removal_keeps_connectivity_and_makes_8_thin():
    r, c = np.mgrid[:H, :W]
    diag = (np.abs(r - c) <= 2) & (r > 3) & (r < 24)  # thick diagonal stroke
    ims = np.stack([diag, ring(3) >= 0.5, ring(2) >= 0.5])
    skel = remove_staircases(zhang_suen_skeleton(ims))
    eight = np.ones((3, 3))
    for s in skel:
        assert ndimage.label(s, structure=eight)[1] == 1
        # no 4-connected corner triples: pixel with an orthogonal neighbour on two sides
        p = np.pad(s, 1)
        n, e, so, w = p[:-2, 1:-1], p[1:-1, 2:], p[2:, 1:-1], p[1:-1, :-2]
        corner = s & ((n & e) | (e & so) | (so & w) | (w & n))
        assert not corner.any()


# ---------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------


def test_uint8_float_and_channel_axis_agree():
    ims = np.stack([parallelogram(5, 18, 0.3), ring(3), ell(2)])
    m_float = image_measures(ims)
    m_uint8 = image_measures((ims * 255).astype(np.uint8))
    m_chan = image_measures(ims[..., None])
    for k in ("slant", "width", "thickness"):
        np.testing.assert_allclose(m_uint8[k], m_float[k], rtol=1e-5)
        np.testing.assert_allclose(m_chan[k], m_float[k], rtol=1e-12)
        assert m_float[k].dtype == np.float64


def test_uint8_scale_is_divided_by_255():
    faint, strong = bar(4, 20) * 100, bar(4, 20) * 200  # 0.39 and 0.78 of full scale
    for ims in (np.stack([faint, strong]).astype(np.uint8), np.stack([faint, strong])):
        t = image_measures(ims)["thickness"]
        assert np.isnan(t[0])  # below the 0.5 threshold: nothing left after binarizing
        assert t[1] == pytest.approx(4.0, abs=0.05)


def test_negative_input_is_rejected():
    with pytest.raises(ValueError):
        image_measures(ring(3)[None] * 2 - 1)


# ---------------------------------------------------------------------------------------
# Sweep statistics
# ---------------------------------------------------------------------------------------

CODE = np.linspace(-1, 1, 9)


def test_rho_matches_scipy_spearman():
    rng = np.random.default_rng(1)
    meas = rng.normal(size=(20, CODE.size))
    meas[3, 2] = meas[3, 5]  # a tie
    rho = sweep_statistics(CODE, meas)["rho"]
    expected = [spearmanr(CODE, row).statistic for row in meas]
    np.testing.assert_allclose(rho, expected, atol=1e-12)


def test_increasing_rows_are_clean_and_positive():
    rng = np.random.default_rng(2)
    scale = rng.uniform(0.1, 3, size=(30, 1))
    meas = scale * np.exp(CODE)[None] + rng.normal(size=(30, 1))  # monotone, offsets vary
    out = sweep_statistics(CODE, meas)
    np.testing.assert_allclose(out["rho"], 1.0)
    assert out["majority_sign"] == 1
    assert out["clean_rows"] == 1.0
    assert out["median_abs_rho"] == pytest.approx(1.0)


def test_decreasing_rows_give_negative_sign():
    meas = -np.tile(CODE**3, (10, 1)) + np.arange(10)[:, None]
    meas[0] = meas[0][::-1]  # one row goes the other way
    out = sweep_statistics(CODE, meas)
    assert out["majority_sign"] == -1
    assert out["clean_rows"] == pytest.approx(0.9)


def test_random_rows_are_not_clean():
    rng = np.random.default_rng(3)
    out = sweep_statistics(CODE, rng.normal(size=(500, CODE.size)))
    assert out["clean_rows"] < 0.05
    assert out["median_abs_rho"] < 0.4


def test_constant_and_nan_rows():
    meas = np.vstack([np.full(CODE.size, 2.5), CODE, CODE])
    meas[2, 4] = np.nan
    out = sweep_statistics(CODE, meas)
    assert out["rho"][0] == 0.0
    assert out["rho"][1] == pytest.approx(1.0)
    assert np.isnan(out["rho"][2])
    assert out["clean_rows"] == pytest.approx(1 / 3)  # only row 1 is clean
    assert out["median_abs_rho"] == pytest.approx(0.5)  # median of {0, 1}


def test_majority_sign_tie_is_positive():
    meas = np.vstack([CODE, -CODE])  # median rho is exactly 0
    assert sweep_statistics(CODE, meas)["majority_sign"] == 1


def test_within_category_rho():
    # category 0: every row increases, but row offsets are large, so pooled rho < 1;
    # category 1: every row decreases with no offset, so pooled rho = -1.
    offsets = np.array([0.0, 10.0, 20.0])[:, None]
    cat0 = CODE[None] + offsets
    cat1 = np.tile(-CODE, (2, 1))
    meas = np.vstack([cat0, cat1])
    cats = np.array([0, 0, 0, 1, 1])
    out = sweep_statistics(CODE, meas, categories=cats)
    pooled0 = spearmanr(np.tile(CODE, 3), cat0.ravel()).statistic
    assert 0 < pooled0 < 0.5
    np.testing.assert_allclose(out["category_rho"], [pooled0, -1.0])
    np.testing.assert_array_equal(out["category_ids"], [0, 1])
    assert out["within_category_rho"] == pytest.approx((pooled0 - 1.0) / 2)
    # the per-row statistic, in contrast, sees two perfectly clean categories
    np.testing.assert_allclose(np.abs(out["rho"]), 1.0)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        sweep_statistics(CODE[:-1], np.zeros((3, CODE.size)))


def test_median_abs_change_is_the_median_row_end_to_end_and_skips_broken_ends():
    meas = np.vstack([2 * CODE, -5 * CODE, 3 * CODE, CODE])  # ends apart by 4, 10, 6, 2
    meas[3, -1] = np.nan  # a row with an empty last image does not count
    assert sweep_statistics(CODE, meas)["median_abs_change"] == pytest.approx(6.0)


def stretched(image, factor):
    """`image` stretched horizontally by `factor` about its centre (bilinear)."""
    return ndimage.affine_transform(image, [1.0, 1.0 / factor], offset=[0, 13.5 * (1 - 1 / factor)],
                                    order=1)  # fmt: skip


def rotated(image, degrees):
    return ndimage.rotate(image, degrees, reshape=False, order=1)


def test_a_width_sweep_moves_a_leaning_digits_slant_cleanly_but_turns_it_little():
    # Why evaluate.py reports the turn beside the clean rows: stretching a digit that leans 20
    # degrees by 0.75-1.25 changes its lean monotonically (every row "clean" for slant), by
    # about 9 degrees; turning it by +-15 degrees moves the same measure by about 30.
    leaning = parallelogram(4, 20, np.tan(np.radians(20)))
    factors, angles = np.linspace(0.75, 1.25, CODE.size), np.linspace(15, -15, CODE.size)
    width_row = np.degrees(
        image_measures(np.stack([stretched(leaning, f) for f in factors]))["slant"]
    )
    turn_row = np.degrees(image_measures(np.stack([rotated(leaning, a) for a in angles]))["slant"])
    width_sweep = sweep_statistics(CODE, width_row[None])
    turn_sweep = sweep_statistics(CODE, turn_row[None])
    assert width_sweep["clean_rows"] == 1.0 and turn_sweep["clean_rows"] == 1.0
    assert 5 < width_sweep["median_abs_change"] < 10
    assert 25 < turn_sweep["median_abs_change"] < 35
