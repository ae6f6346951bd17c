"""The training process draws its priors and takes its log-likelihoods with plain TensorFlow
(importing TFP would load tf_keras, ~64 MB). These tests hold those functions to TFP's own
results, bit for bit, so the committed runs (made with TFP) stay reproducible."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import infogan
from utils import sample_latent, split_seed

tfd = tfp.distributions

SEEDS = [[0, 0], [3, 4], [-7, 2**31 - 1], [123456789, -987654321]]


def tfp_sample_latent(batch_size, seed):
    """What sample_latent computed when it called TFP."""
    categorical_seed, continuous_seed, noise_seed = tfp.random.split_seed(
        tf.cast(seed, tf.int32), n=3
    )
    categorical_code = tfd.OneHotCategorical(logits=tf.zeros([10]), dtype=tf.float32).sample(
        batch_size, seed=categorical_seed
    )
    continuous_codes = tfd.Uniform(-1.0, 1.0).sample([batch_size, 2], seed=continuous_seed)
    noise = tfd.Uniform(-1.0, 1.0).sample([batch_size, 62], seed=noise_seed)
    return categorical_code, continuous_codes, noise


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("salt", [None, "random_affine"])
def test_split_seed_is_tfps(seed, salt):
    ours = split_seed(tf.constant(seed, tf.int64), 3, salt=salt)
    theirs = tfp.random.split_seed(tf.constant(seed, tf.int32), n=3, salt=salt)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(ours[0].numpy(), ours[1].numpy())


@pytest.mark.parametrize("seed", SEEDS)
def test_sample_latent_is_tfps_in_eager_and_compiled_code(seed):
    expected = tfp_sample_latent(256, seed)
    compiled = tf.function(sample_latent)(256, tf.constant(seed, tf.int64))
    for ours in (sample_latent(256, seed), compiled):
        for a, b in zip(ours, expected, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_info_loss_terms_are_tfps():
    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(size=(64, 10)) * 3, tf.float32)
    code = tf.one_hot(rng.integers(0, 10, 64), 10)
    x = tf.constant(rng.uniform(-1, 1, (64, 2)), tf.float32)
    mean = tf.constant(rng.normal(size=(64, 2)), tf.float32)
    scale = tf.exp(tf.constant(rng.normal(size=(64, 2)), tf.float32))

    expected_nll = -tf.reduce_mean(tfd.Categorical(logits=logits).log_prob(tf.argmax(code, -1)))
    np.testing.assert_array_equal(infogan.categorical_nll_of(code, logits), expected_nll)
    for s in (scale, tf.ones_like(scale)):
        np.testing.assert_array_equal(
            infogan.normal_log_prob(x, mean, s), tfd.Normal(loc=mean, scale=s).log_prob(x)
        )
