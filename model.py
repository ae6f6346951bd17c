"""InfoGAN networks for MNIST (Chen et al. 2016, Table 1), as Keras 3 Functional models.

This file knows nothing about training. The generator takes ONE latent vector laid out as
[categorical one-hot (10) | c1 | c2 | noise (62)]; the discriminator model holds the shared body,
the real/fake head D and the auxiliary head Q, so one saved file reads codes back from images.
"""

import keras
from keras import layers

CATEGORICAL_DIM = 10  # K of the categorical code c_cat ~ Cat(K, 1/K)
CONTINUOUS_DIM = 2  # c1, c2 ~ Uniform(-1, 1)
NOISE_DIM = 62  # incompressible noise z ~ Uniform(-1, 1)
LATENT_DIM = CATEGORICAL_DIM + CONTINUOUS_DIM + NOISE_DIM  # 74

# Where each part lives in the generator's input vector.
CATEGORICAL_SLICE = slice(0, CATEGORICAL_DIM)
CONTINUOUS_SLICE = slice(CATEGORICAL_DIM, CATEGORICAL_DIM + CONTINUOUS_DIM)
NOISE_SLICE = slice(CATEGORICAL_DIM + CONTINUOUS_DIM, LATENT_DIM)

IMAGE_SHAPE = (28, 28, 1)  # pixels in [-1, 1]
LEAKY_SLOPE = 0.1

# Output names of the discriminator model, in order.
DISCRIMINATOR_OUTPUTS = (
    "d_logit",
    "categorical_logits",
    "continuous_mean",
    "continuous_log_std",
)


@keras.saving.register_keras_serializable(package="infogan")
class ScaleNoise(layers.Layer):
    """Multiplies the noise slice of the latent by a constant `scale`, leaving the codes alone.

    The saved generator keeps the interface of model.py (noise drawn from Uniform(-1, 1)); inside,
    G sees noise in [-scale, scale]. Why: at initialisation the 62 noise inputs carry about 93 %
    of the variance of G's first layer and the 10-way code under 5 %, so early training shapes
    G's modes from the noise; a small scale makes the codes dominate from the first step. In our
    runs that did not make the codes follow the digits more reliably and it cost sample variety
    (README, "What we tried"), so training defaults to 1, which leaves this layer out."""

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, latent):
        codes = latent[:, : NOISE_SLICE.start]
        noise = latent[:, NOISE_SLICE] * self.scale
        return keras.ops.concatenate([codes, noise], axis=-1)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def build_generator(name="generator", noise_scale=1.0):
    """G: latent (B, 74) -> image (B, 28, 28, 1) in [-1, 1]. With noise_scale != 1 the noise
    slice is scaled inside the model (ScaleNoise); 1 is the paper's network exactly."""
    latent = keras.Input(shape=(LATENT_DIM,), name="latent")
    x = latent
    if noise_scale != 1.0:
        x = ScaleNoise(noise_scale, name="g_scale_noise")(x)
    x = layers.Dense(1024, use_bias=False, name="g_fc1")(x)
    x = layers.BatchNormalization(name="g_bn1")(x)
    x = layers.ReLU(name="g_relu1")(x)
    x = layers.Dense(7 * 7 * 128, use_bias=False, name="g_fc2")(x)
    x = layers.BatchNormalization(name="g_bn2")(x)
    x = layers.ReLU(name="g_relu2")(x)
    x = layers.Reshape((7, 7, 128), name="g_reshape")(x)  # (B, 7, 7, 128)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same", use_bias=False, name="g_deconv1")(
        x
    )
    x = layers.BatchNormalization(name="g_bn3")(x)
    x = layers.ReLU(name="g_relu3")(x)  # (B, 14, 14, 64)
    image = layers.Conv2DTranspose(
        1, 4, strides=2, padding="same", activation="tanh", name="g_deconv2"
    )(x)  # (B, 28, 28, 1)
    return keras.Model(latent, image, name=name)


def build_discriminator(name="discriminator"):
    """Shared body + D head + Q head: image (B, 28, 28, 1) -> the four DISCRIMINATOR_OUTPUTS.

    d_logit (B, 1): real/fake logit (no sigmoid; losses use from_logits).
    categorical_logits (B, 10): Q's logits for c_cat.
    continuous_mean, continuous_log_std (B, 2): Q's Gaussian for c1 and c2, one unit per code.
    """
    image = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = layers.Conv2D(64, 4, strides=2, padding="same", name="d_conv1")(image)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="d_lrelu1")(
        x
    )  # (B, 14, 14, 64), no BN on the input layer
    x = layers.Conv2D(128, 4, strides=2, padding="same", use_bias=False, name="d_conv2")(x)
    x = layers.BatchNormalization(name="d_bn2")(x)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="d_lrelu2")(x)  # (B, 7, 7, 128)
    x = layers.Flatten(name="d_flatten")(x)
    x = layers.Dense(1024, use_bias=False, name="d_fc3")(x)
    x = layers.BatchNormalization(name="d_bn3")(x)
    features = layers.LeakyReLU(LEAKY_SLOPE, name="d_lrelu3")(x)  # (B, 1024), shared by D and Q

    d_logit = layers.Dense(1, name="d_logit")(features)

    q = layers.Dense(128, use_bias=False, name="q_fc1")(features)
    q = layers.BatchNormalization(name="q_bn1")(q)
    q = layers.LeakyReLU(LEAKY_SLOPE, name="q_lrelu1")(q)
    categorical_logits = layers.Dense(CATEGORICAL_DIM, name="categorical_logits")(q)
    continuous_mean = layers.Dense(CONTINUOUS_DIM, name="continuous_mean")(q)
    continuous_log_std = layers.Dense(CONTINUOUS_DIM, name="continuous_log_std")(q)
    return keras.Model(
        image,
        [d_logit, categorical_logits, continuous_mean, continuous_log_std],
        name=name,
    )


def body_variables(discriminator):
    """Trainable variables of the body that D and Q share (every d_* layer but the D head)."""
    return [
        v
        for layer in discriminator.layers
        if layer.name.startswith("d_") and layer.name != "d_logit"
        for v in layer.trainable_variables
    ]


def q_head_variables(discriminator):
    head = ("q_", "categorical_logits", "continuous_")
    return [
        v
        for layer in discriminator.layers
        if layer.name.startswith(head)
        for v in layer.trainable_variables
    ]
