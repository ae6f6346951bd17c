import numpy as np
import tensorflow as tf
from conftest import MNIST_SMALL
from scipy.ndimage import grey_dilation, grey_erosion

from evaluate import image_measures
from utils import random_affine

STILL = {"max_degrees": 0.0, "x_scale": 0.0, "y_scale": 0.0, "max_shift": 0.0}


def vertical_bars(count=64):
    images = -np.ones((count, 28, 28, 1), np.float32)
    images[:, 6:22, 13:15] = 1.0
    return tf.constant(images)


def unit(images):
    return (np.asarray(images)[..., 0] + 1.0) / 2.0  # [-1, 1] -> [0, 1] for image_measures


def test_no_motion_is_the_identity_and_blank_stays_blank():
    bars = vertical_bars()
    assert np.array_equal(random_affine(bars, [1, 2], **STILL), bars)
    blank = -tf.ones((8, 28, 28, 1))
    assert np.array_equal(random_affine(blank, [1, 2]), blank)


def test_rotation_leans_bars_both_ways_within_the_limit():
    rotated = random_affine(vertical_bars(), [3, 4], **{**STILL, "max_degrees": 15.0})
    slant = image_measures(unit(rotated))["slant"]
    assert slant.min() < -0.1 and slant.max() > 0.1  # both directions occur
    assert np.abs(slant).max() <= np.radians(15.0) * 1.1  # and no more than 15 degrees


def test_stretch_changes_width_and_shift_moves_the_centre_by_at_most_the_limit():
    bars = vertical_bars()
    blocks = -np.ones((64, 28, 28, 1), np.float32)
    blocks[:, 6:22, 9:19] = 1.0  # 10 pixels wide, so a 20 % stretch shows in the moments
    width = image_measures(unit(blocks))["width"][0]
    stretched = image_measures(unit(random_affine(blocks, [5, 6], **{**STILL, "x_scale": 0.2})))[
        "width"
    ]
    assert stretched.min() < width * 0.9 and stretched.max() > width * 1.1
    assert stretched.min() > width * 0.75 and stretched.max() < width * 1.25

    shifted = unit(random_affine(bars, [7, 8], **{**STILL, "max_shift": 2.0}))
    columns = np.arange(28.0)
    centre_x = (shifted.sum(1) * columns).sum(1) / shifted.sum((1, 2))
    moved = centre_x - 13.5
    assert np.abs(moved).max() <= 2.0 + 1e-4 and np.abs(moved).max() > 1.0


def test_same_seed_same_motion_and_gradients_reach_the_images():
    bars = vertical_bars(8)
    assert np.array_equal(random_affine(bars, [9, 9]), random_affine(bars, [9, 9]))
    assert not np.array_equal(random_affine(bars, [9, 9]), random_affine(bars, [9, 10]))
    with tf.GradientTape() as tape:
        tape.watch(bars)
        total = tf.reduce_sum(random_affine(bars, [9, 9]))
    gradient = np.asarray(tape.gradient(total, bars))
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


def test_stroke_changes_thicken_and_thin_and_keep_the_gradient():
    from evaluate import image_measures
    from utils import change_strokes, stroke_changes

    bars = -np.ones((3, 28, 28, 1), np.float32)
    bars[:, 6:22, 11:17] = 1.0  # 6 pixels wide
    bars = tf.constant(bars)
    changed = change_strokes(bars, tf.constant([-1.0, 0.0, 1.0]))
    thickness = image_measures(unit(changed))["thickness"]
    assert thickness[0] < thickness[1] < thickness[2]
    np.testing.assert_array_equal(changed[1], bars[1])  # no change is the identity
    # On digits, a blend towards the 3x3 grey-level dilation (> 0) or erosion (< 0), as defined.
    digits = np.load(MNIST_SMALL)["x_test"][:4, :, :, None].astype(np.float32) / 127.5 - 1
    changes = np.array([0.7, -0.7, 1.0, -0.3], np.float32)
    expected = []
    for image, change in zip(digits, changes, strict=True):
        pooled = (grey_dilation if change > 0 else grey_erosion)(image, (3, 3, 1))
        expected.append(image + abs(change) * (pooled - image))
    np.testing.assert_allclose(change_strokes(tf.constant(digits), changes), expected, atol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(bars)
        total = tf.reduce_sum(change_strokes(bars, tf.constant([-0.5, 0.2, 0.5])))
    assert np.abs(np.asarray(tape.gradient(total, bars))).sum() > 0
    draws = np.asarray(stroke_changes(1000, [1, 2], 0.5))
    assert draws.min() >= -0.5 and draws.max() <= 0.5 and draws.min() < -0.4 and draws.max() > 0.4
    np.testing.assert_array_equal(draws, stroke_changes(1000, [1, 2], 0.5))


def test_deslanting_makes_leaning_bars_upright_before_the_motion():
    from utils import affine_transforms, apply_affine, deslanted

    shears = np.array([-0.6, -0.3, 0.0, 0.3, 0.6], np.float32)  # dx per row down
    bars = -np.ones((5, 28, 28, 1), np.float32)
    for bar, shear in zip(bars, shears, strict=True):
        for row in range(5, 23):
            column = int(round(13 + shear * (row - 14)))
            bar[row, column - 1 : column + 2] = 1.0
    bars = tf.constant(bars)
    slant = image_measures(unit(bars))["slant"]
    assert np.abs(slant).max() > np.radians(25)  # the input leans, both ways
    still = affine_transforms(5, [1, 2], **STILL)
    upright = image_measures(unit(apply_affine(bars, deslanted(bars, still))))["slant"]
    assert np.abs(upright).max() < np.radians(2)
    turns = affine_transforms(5, [1, 2], **{**STILL, "max_degrees": 15.0})  # upright, then turned
    turned = image_measures(unit(apply_affine(bars, deslanted(bars, turns))))["slant"]
    alone = image_measures(unit(apply_affine(vertical_bars(5), turns)))["slant"]
    np.testing.assert_allclose(turned, alone, atol=np.radians(2))
    blank = -tf.ones((2, 28, 28, 1))  # no ink: no shear, the motion alone
    np.testing.assert_array_equal(deslanted(blank, still[:2]), still[:2])
