import numpy as np
import tensorflow_probability as tfp

from utils import (
    CATEGORICAL_DIM,
    CATEGORICAL_SLICE,
    CONTINUOUS_SLICE,
    NOISE_SLICE,
    category_grid_latent,
    contrastive_pairs,
    join_latent,
    latent_priors,
    latent_sweep,
    latent_vectors,
    sample_latent,
    step_seeds,
    sweep_latents,
)


def test_sample_latent_layout_and_ranges():
    categorical_code, continuous_codes, noise = (np.asarray(t) for t in sample_latent(4096, [3, 4]))
    assert categorical_code.shape == (4096, 10)
    assert continuous_codes.shape == (4096, 2) and noise.shape == (4096, 62)
    assert set(np.unique(categorical_code)) == {0.0, 1.0}
    np.testing.assert_array_equal(categorical_code.sum(1), 1.0)
    # Uniform prior over the 10 values: each near 10% of 4096 draws.
    assert np.all(np.abs(categorical_code.mean(0) - 0.1) < 0.03)
    for uniform in (continuous_codes, noise):
        assert uniform.min() >= -1 and uniform.max() <= 1
        assert uniform.min() < -0.95 and uniform.max() > 0.95 and abs(uniform.mean()) < 0.05
    latent = np.asarray(join_latent(categorical_code, continuous_codes, noise))
    np.testing.assert_array_equal(latent[:, CATEGORICAL_SLICE], categorical_code)
    np.testing.assert_array_equal(latent[:, CONTINUOUS_SLICE], continuous_codes)
    np.testing.assert_array_equal(latent[:, NOISE_SLICE], noise)


def test_sample_latent_is_deterministic_per_seed():
    first, again, other = (
        sample_latent(8, [1, 2]),
        sample_latent(8, [1, 2]),
        sample_latent(8, [1, 3]),
    )
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(first[2]), np.asarray(other[2]))


def test_category_grid_rows_are_categories_columns_share_noise():
    latent = category_grid_latent(columns=5, seed=0).reshape(10, 5, 74)
    for category in range(CATEGORICAL_DIM):
        assert (latent[category, :, CATEGORICAL_SLICE].argmax(-1) == category).all()
    np.testing.assert_array_equal(latent[:, :, CONTINUOUS_SLICE], 0.0)
    for row in range(1, CATEGORICAL_DIM):  # column j uses the same noise in every row
        np.testing.assert_array_equal(latent[row, :, NOISE_SLICE], latent[0, :, NOISE_SLICE])
    assert not np.array_equal(latent[0, 0, NOISE_SLICE], latent[0, 1, NOISE_SLICE])
    np.testing.assert_array_equal(latent.reshape(-1, 74), category_grid_latent(5, seed=0))


def test_latent_sweep_varies_one_code_with_noise_fixed_along_rows():
    values = np.linspace(-2, 2, 7)
    for code_index in (0, 1):
        latent = latent_sweep(code_index, values, seed=5).reshape(10, 7, 74)
        continuous = latent[:, :, CONTINUOUS_SLICE]
        np.testing.assert_allclose(continuous[:, :, code_index], np.tile(values, (10, 1)))
        np.testing.assert_array_equal(continuous[:, :, 1 - code_index], 0.0)
        for row in range(10):
            assert (latent[row, :, CATEGORICAL_SLICE].argmax(-1) == row).all()
            np.testing.assert_array_equal(
                latent[row, :, NOISE_SLICE], np.repeat(latent[row, :1, NOISE_SLICE], 7, 0)
            )
        assert not np.array_equal(latent[0, 0, NOISE_SLICE], latent[1, 0, NOISE_SLICE])


def test_priors_are_tfp_distributions_and_sample_latent_draws_from_them():
    tfd = tfp.distributions
    priors = latent_priors()
    assert isinstance(priors["categorical"], tfd.OneHotCategorical)
    assert isinstance(priors["uniform"], tfd.Uniform)
    categorical_seed, continuous_seed, noise_seed = tfp.random.split_seed([3, 4], n=3)
    expected = (
        priors["categorical"].sample(64, seed=categorical_seed),
        priors["uniform"].sample([64, 2], seed=continuous_seed),
        priors["uniform"].sample([64, 62], seed=noise_seed),
    )
    for ours, theirs in zip(sample_latent(64, [3, 4]), expected, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_step_seeds_depend_on_seed_and_epoch_only():
    first = step_seeds(0, 3, 10)
    assert first.shape == (10, 2) and first.dtype == np.int32
    np.testing.assert_array_equal(first, step_seeds(0, 3, 10))
    np.testing.assert_array_equal(first[:4], step_seeds(0, 3, 4))  # a prefix of the epoch's
    assert not np.array_equal(first, step_seeds(0, 4, 10))
    assert not np.array_equal(first, step_seeds(1, 3, 10))
    assert len({tuple(seed) for seed in first}) == 10


def test_sweep_rows_hold_category_noise_and_other_code_fixed():
    rng = np.random.default_rng(0)
    categories, noise, other = np.array([4, 7, 7]), rng.uniform(-1, 1, (3, 62)), [0.5, -0.2, 0.9]
    values = np.linspace(-1, 1, 5)
    latent = sweep_latents(1, values, categories, noise, other).reshape(3, 5, 74)
    for row in range(3):
        np.testing.assert_array_equal(latent[row, :, CATEGORICAL_SLICE].argmax(-1), categories[row])
        np.testing.assert_allclose(latent[row, :, CONTINUOUS_SLICE][:, 1], values)
        np.testing.assert_allclose(latent[row, :, CONTINUOUS_SLICE][:, 0], other[row])
        np.testing.assert_allclose(latent[row, :, NOISE_SLICE], np.tile(noise[row], (5, 1)))
    one = latent_vectors([2], [[0.1, 0.2]], noise[:1])
    assert one.shape == (1, 74) and one[0, 2] == 1 and one[0, :10].sum() == 1


def test_contrastive_pairs_share_their_noise_and_exactly_one_code():
    shared_code, latent_a, latent_b = (np.asarray(part) for part in contrastive_pairs(600, [3, 4]))
    assert latent_a.shape == latent_b.shape == (600, 74)
    assert set(shared_code.tolist()) == {0, 1, 2}  # the categorical code, c1, c2
    np.testing.assert_array_equal(latent_a[:, NOISE_SLICE], latent_b[:, NOISE_SLICE])
    same_category = latent_a[:, CATEGORICAL_SLICE].argmax(1) == latent_b[
        :, CATEGORICAL_SLICE
    ].argmax(1)
    np.testing.assert_array_equal(same_category, shared_code == 0)
    assert np.all(latent_b[:, CATEGORICAL_SLICE].sum(1) == 1)  # still one-hot
    same_continuous = latent_a[:, CONTINUOUS_SLICE] == latent_b[:, CONTINUOUS_SLICE]  # (600, 2)
    for code in (1, 2):
        np.testing.assert_array_equal(same_continuous[:, code - 1], shared_code == code)
    other = latent_b[:, CONTINUOUS_SLICE][shared_code != 1, 0]  # c1 drawn afresh: uniform
    assert other.min() >= -1 and other.max() <= 1 and abs(other.mean()) < 0.1
    np.testing.assert_array_equal(np.asarray(contrastive_pairs(600, [3, 4])[1]), latent_a)
