"""InfoGAN networks for MNIST (Chen et al. 2016, Table 1), as Keras 3 Functional models.

This file knows nothing about training. The generator takes ONE latent vector laid out as
[categorical one-hot (10) | c1 | c2 | noise (62)]; the discriminator model holds the shared body,
the real/fake head D and the auxiliary head Q, so one saved file reads codes back from images.
"""

import keras
from keras import layers

from utils import (  # the latent layout, shared with the code that builds latents
    CATEGORICAL_DIM,
    CONTINUOUS_DIM,
    IMAGE_SHAPE,
    LATENT_DIM,
)

LEAKY_SLOPE = 0.1

# Output names of the discriminator model, in order.
DISCRIMINATOR_OUTPUTS = (
    "d_logit",
    "categorical_logits",
    "continuous_mean",
    "continuous_log_std",
)


def batch_norm(synchronized, name):
    return layers.BatchNormalization(synchronized=synchronized, name=name)


def build_generator(name="generator", synchronized_bn=False):
    """G: latent (B, 74) -> image (B, 28, 28, 1) in [-1, 1].

    synchronized_bn: batch norm takes its statistics over the global batch of all replicas
    under tf.distribute (the same numbers as one device); no effect on one device."""
    latent = keras.Input(shape=(LATENT_DIM,), name="latent")
    x = layers.Dense(1024, use_bias=False, name="g_fc1")(latent)
    x = batch_norm(synchronized_bn, "g_bn1")(x)
    x = layers.ReLU(name="g_relu1")(x)
    x = layers.Dense(7 * 7 * 128, use_bias=False, name="g_fc2")(x)
    x = batch_norm(synchronized_bn, "g_bn2")(x)
    x = layers.ReLU(name="g_relu2")(x)
    x = layers.Reshape((7, 7, 128), name="g_reshape")(x)  # (B, 7, 7, 128)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same", use_bias=False, name="g_deconv1")(
        x
    )
    x = batch_norm(synchronized_bn, "g_bn3")(x)
    x = layers.ReLU(name="g_relu3")(x)  # (B, 14, 14, 64)
    image = layers.Conv2DTranspose(
        1, 4, strides=2, padding="same", activation="tanh", name="g_deconv2"
    )(x)  # (B, 28, 28, 1)
    return keras.Model(latent, image, name=name)


def build_discriminator(name="discriminator", synchronized_bn=False, q_head="shared"):
    """Shared body + D head + Q head: image (B, 28, 28, 1) -> the four DISCRIMINATOR_OUTPUTS.

    d_logit (B, 1): real/fake logit (no sigmoid; losses use from_logits).
    categorical_logits (B, 10): Q's logits for c_cat.
    continuous_mean, continuous_log_std (B, 2): Q's Gaussian for c1 and c2, one unit per code.
    q_head: "shared", one hidden layer of 128 for all of Q's outputs (the paper), or "separate",
    one for the categorical logits and one for the continuous codes.
    """
    image = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = layers.Conv2D(64, 4, strides=2, padding="same", name="d_conv1")(image)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="d_lrelu1")(x)  # (B, 14, 14, 64), no BN here
    x = layers.Conv2D(128, 4, strides=2, padding="same", use_bias=False, name="d_conv2")(x)
    x = batch_norm(synchronized_bn, "d_bn2")(x)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="d_lrelu2")(x)  # (B, 7, 7, 128)
    x = layers.Flatten(name="d_flatten")(x)
    x = layers.Dense(1024, use_bias=False, name="d_fc3")(x)
    x = batch_norm(synchronized_bn, "d_bn3")(x)
    features = layers.LeakyReLU(LEAKY_SLOPE, name="d_lrelu3")(x)  # (B, 1024), shared by D and Q

    d_logit = layers.Dense(1, name="d_logit")(features)

    def q_hidden(suffix):  # (B, 128)
        q = layers.Dense(128, use_bias=False, name="q_fc1" + suffix)(features)
        q = batch_norm(synchronized_bn, "q_bn1" + suffix)(q)
        return layers.LeakyReLU(LEAKY_SLOPE, name="q_lrelu1" + suffix)(q)

    if q_head == "shared":
        categorical_q = continuous_q = q_hidden("")
    elif q_head == "separate":
        categorical_q, continuous_q = q_hidden("_categorical"), q_hidden("_continuous")
    else:
        raise ValueError(f"q_head must be 'shared' or 'separate', got {q_head!r}")
    categorical_logits = layers.Dense(CATEGORICAL_DIM, name="categorical_logits")(categorical_q)
    continuous_mean = layers.Dense(CONTINUOUS_DIM, name="continuous_mean")(continuous_q)
    continuous_log_std = layers.Dense(CONTINUOUS_DIM, name="continuous_log_std")(continuous_q)
    return keras.Model(
        image,
        [d_logit, categorical_logits, continuous_mean, continuous_log_std],
        name=name,
    )


def build_pair_discriminator(name="pair_discriminator"):
    """InfoGAN-CR's contrastive discriminator: a pair of images stacked as channels (B, 28, 28, 2)
    -> logits (B, 1 + CONTINUOUS_DIM) over which code the pair shares (0: the categorical code,
    1: c1, 2: c2). Its own small network without batch norm, as in Lin et al. 2020."""
    pair = keras.Input(shape=(*IMAGE_SHAPE[:2], 2), name="image_pair")
    x = layers.Conv2D(32, 4, strides=2, padding="same", name="p_conv1")(pair)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="p_lrelu1")(x)  # (B, 14, 14, 32)
    # No bias (as in the runs of docs/experiments.md): TF 2.21's remapper failed on this layer.
    x = layers.Conv2D(64, 4, strides=2, padding="same", use_bias=False, name="p_conv2")(x)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="p_lrelu2")(x)  # (B, 7, 7, 64)
    x = layers.Flatten(name="p_flatten")(x)
    x = layers.Dense(256, name="p_fc3")(x)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="p_lrelu3")(x)
    shared_code_logits = layers.Dense(1 + CONTINUOUS_DIM, name="shared_code_logits")(x)
    return keras.Model(pair, shared_code_logits, name=name)


def body_variables(discriminator):
    """Trainable variables of the body that D and Q share (every d_* layer but the D head)."""
    return [
        v
        for layer in discriminator.layers
        if layer.name.startswith("d_") and layer.name != "d_logit"
        for v in layer.trainable_variables
    ]


def q_head_variables(discriminator):
    """Trainable variables of the Q head (categorical logits, continuous mean and log-std)."""
    head = ("q_", "categorical_logits", "continuous_")
    return [
        v
        for layer in discriminator.layers
        if layer.name.startswith(head)
        for v in layer.trainable_variables
    ]
