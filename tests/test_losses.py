import math

import numpy as np
import pytest
import tensorflow as tf

import infogan


def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def gaussian_nll(x, mean, std):
    return 0.5 * math.log(2 * math.pi) + np.log(std) + (x - mean) ** 2 / (2 * std**2)


@pytest.mark.parametrize("std_mode", ["learned", "fixed"])
def test_info_nll_matches_hand_computation(std_mode):
    rng = np.random.default_rng(0)
    code = np.eye(10, dtype=np.float32)[[3, 7, 0]]
    logits = rng.normal(size=(3, 10)).astype(np.float32)
    continuous = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
    mean = rng.normal(size=(3, 2)).astype(np.float32) * 0.5
    log_std = rng.normal(size=(3, 2)).astype(np.float32) * 0.5
    config = infogan.Config(continuous_std=std_mode)

    categorical_nll, continuous_nll = infogan.info_nll(
        code, continuous, logits, mean, log_std, config
    )

    expected_cat = -np.log(softmax(logits)[np.arange(3), [3, 7, 0]])
    std = np.exp(log_std) if std_mode == "learned" else np.ones_like(log_std)
    expected_cont = gaussian_nll(continuous, mean, std).sum(-1)  # per example, summed over codes
    np.testing.assert_allclose(categorical_nll, expected_cat, rtol=1e-5)
    np.testing.assert_allclose(continuous_nll, expected_cont, rtol=1e-5)


def test_info_nll_reads_each_code_from_its_own_output():
    # A Q that gets c1 right and c2 wrong must score worse than one right on both.
    config = infogan.Config(continuous_std="fixed")
    code, logits = np.eye(10, dtype=np.float32)[[0]], np.zeros((1, 10), np.float32)
    truth = np.array([[0.5, -0.5]], np.float32)
    zeros = np.zeros((1, 2), np.float32)
    right = infogan.info_nll(code, truth, logits, truth, zeros, config)[1]
    swapped = infogan.info_nll(code, truth, logits, truth[:, ::-1].copy(), zeros, config)[1]
    assert float(swapped[0]) - float(right[0]) == pytest.approx(1.0, rel=1e-5)  # (1 + 1) / 2


def test_gan_losses_match_closed_form():
    real = tf.constant([[2.0], [-1.0]])
    fake = tf.constant([[0.5], [-3.0]])

    def sigmoid(x):
        return 1 / (1 + np.exp(-np.asarray(x)[:, 0]))

    d_gan, g_gan = infogan.gan_losses(real, fake)
    np.testing.assert_allclose(d_gan, -np.log(sigmoid(real)) - np.log(1 - sigmoid(fake)), 1e-5)
    np.testing.assert_allclose(g_gan, -np.log(sigmoid(fake)), rtol=1e-5)  # non-saturating
