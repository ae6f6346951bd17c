"""Measure what a trained InfoGAN learned.

    python evaluate.py --data ~/mnist.npz                 # the committed model in model/
    python evaluate.py --model-dir runs/seeds/seed_1/model --out runs/seeds/seed_1/figures

Reads <model-dir>/infogan_model_generator.keras and infogan_model_discriminator.keras, and writes
<out>/evaluation.json, <out>/evaluation.md and <out>/confusion_matrix.png:
- categorical code vs digit on the 10,000 test images, read by Q: Hungarian (one-to-one)
  accuracy, majority-vote purity, NMI, ARI and the confusion matrix;
- generated purity: --per-code images per categorical value, labelled by an MNIST classifier
  that this script trains once and caches (<classifier>), Hungarian-mapped;
- Inception Score and Frechet distance in that classifier's feature space for --samples generated
  images, beside the real-data references (IS of the test set; FD of train vs test images);
- continuous codes: Spearman correlation of c1 and c2 with slant, width (after removing slant)
  and ink, on generated images with that code drawn from its prior and all else random, and of
  Q's predicted codes with the same measures on the real test images.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from model import CATEGORICAL_DIM, CONTINUOUS_DIM, LATENT_DIM, NOISE_DIM
from utils import (
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    UserError,
    atomic_path,
    cluster_accuracy,
    confusion_matrix,
    load_keras_model,
    load_mnist,
    predict_codes,
    to_model_range,
)

DEFAULT_CLASSIFIER = os.path.join("model", "mnist_classifier.keras")
MEASURES = ("slant", "width", "ink")

# ------------------------------------------------------------------------- clustering metrics


def purity(labels, clusters, classes=CATEGORICAL_DIM):
    """Accuracy when each cluster is labelled with its majority digit (many-to-one)."""
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


# ------------------------------------------------------------------------ sample quality


def inception_score(probabilities):
    """exp(E_x KL(p(y|x) || p(y))): 1 for a classifier that cannot tell, 10 at best on MNIST."""
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


# -------------------------------------------------------------------------- image measures


def image_measures(images):
    """Per image (N, 28, 28) in [0, 1] or uint8: slant, width and ink from image moments.

    slant = -mu11 / mu02: the horizontal shear of the stroke mass (> 0 leans right, as in /).
    width = sqrt(mu20 - mu11^2 / mu02): horizontal spread left after removing that shear.
    ink = total pixel mass (stroke thickness times length).
    """
    images = np.asarray(images, np.float64)
    if images.max() > 1.5:
        images = images / 255.0
    images = images.reshape(len(images), 28, 28)
    rows, columns = np.mgrid[0:28, 0:28].astype(np.float64)
    up = 27.0 - rows  # y grows upwards, so a right lean has positive slant
    mass = images.sum((1, 2)) + 1e-9
    mean_x = (images * columns).sum((1, 2)) / mass
    mean_y = (images * up).sum((1, 2)) / mass
    dx = columns[None] - mean_x[:, None, None]
    dy = up[None] - mean_y[:, None, None]
    mu20 = (images * dx * dx).sum((1, 2)) / mass
    mu02 = (images * dy * dy).sum((1, 2)) / mass + 1e-9
    mu11 = (images * dx * dy).sum((1, 2)) / mass
    return {
        "slant": mu11 / mu02,
        "width": np.sqrt(np.maximum(mu20 - mu11**2 / mu02, 0)),
        "ink": mass,
    }


def spearman_table(codes, measures):
    """{code name: {measure: Spearman rho}} for codes (N, 2)."""
    from scipy.stats import spearmanr

    return {
        f"c{index + 1}": {
            name: float(spearmanr(codes[:, index], values).statistic)
            for name, values in measures.items()
        }
        for index in range(codes.shape[1])
    }


# ------------------------------------------------------------------------------- classifier


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
    return keras.Model(image, logits, name="mnist_classifier")


def load_or_train_classifier(path, x_train, y_train, x_test, y_test, epochs):
    """The cached MNIST classifier, trained (and cached) first if `path` does not exist."""
    import keras

    if os.path.exists(path):
        return load_keras_model(path, "classifier (delete it to retrain)")
    print(f"training the MNIST classifier for {epochs} epochs (cached as {path})", flush=True)
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


def generate(generator, categories, rng):
    """Images (N, 28, 28, 1) for the given categorical values, all other inputs from the prior.
    Returns (images, continuous_codes (N, 2))."""
    count = len(categories)
    latent = np.zeros((count, LATENT_DIM), np.float32)
    latent[np.arange(count), categories] = 1.0
    continuous = rng.uniform(-1, 1, (count, CONTINUOUS_DIM)).astype(np.float32)
    latent[:, CATEGORICAL_DIM : CATEGORICAL_DIM + CONTINUOUS_DIM] = continuous
    latent[:, CATEGORICAL_DIM + CONTINUOUS_DIM :] = rng.uniform(-1, 1, (count, NOISE_DIM))
    images = [
        np.asarray(generator(latent[start : start + 1000], training=False))
        for start in range(0, count, 1000)
    ]
    return np.concatenate(images), continuous


def evaluate(args):
    generator = load_keras_model(os.path.join(args.model_dir, GENERATOR_FILE), "generator")
    discriminator = load_keras_model(
        os.path.join(args.model_dir, DISCRIMINATOR_FILE), "discriminator"
    )
    x_train, y_train, x_test, y_test = load_mnist(args.data or None)
    rng = np.random.default_rng(args.seed)
    report = {"model_dir": args.model_dir}

    # Q's categorical code on real test digits.
    clusters, q_codes = predict_codes(discriminator, x_test)
    accuracy, mapping = cluster_accuracy(y_test, clusters)
    report["categorical"] = {
        "test_images": len(y_test),
        "hungarian_accuracy": float(accuracy),
        "purity": float(purity(y_test, clusters)),
        "nmi": normalized_mutual_information(y_test, clusters),
        "ari": adjusted_rand_index(y_test, clusters),
        "code_to_digit": {str(k): int(v) for k, v in sorted(mapping.items())},
        "confusion": confusion_matrix(y_test, clusters).tolist(),  # [code][digit]
    }

    classifier = load_or_train_classifier(
        args.classifier, x_train, y_train, x_test, y_test, args.classifier_epochs
    )
    test_probabilities, test_features = classify(classifier, to_model_range(x_test))
    report["classifier_test_accuracy"] = float((test_probabilities.argmax(1) == y_test).mean())

    # Generated purity and sample quality on per_code images of each categorical value.
    categories = np.repeat(np.arange(CATEGORICAL_DIM), args.per_code)
    images, _ = generate(generator, categories, rng)
    probabilities, features = classify(classifier, images)
    generated_accuracy, generated_mapping = cluster_accuracy(probabilities.argmax(1), categories)
    reference = rng.choice(len(x_train), size=min(len(x_train), len(x_test)), replace=False)
    _, train_features = classify(classifier, to_model_range(x_train[reference]))
    report["generated"] = {
        "images": len(images),
        "purity_hungarian": float(generated_accuracy),
        "code_to_digit": {str(k): int(v) for k, v in sorted(generated_mapping.items())},
        "inception_score": inception_score(probabilities),
        "inception_score_test_set": inception_score(test_probabilities),
        "frechet_distance": frechet_distance(features, test_features),
        "frechet_distance_train_vs_test": frechet_distance(train_features, test_features),
    }

    # Continuous codes: generated images with random codes, and Q's reading of real digits.
    images, continuous = generate(generator, rng.integers(0, CATEGORICAL_DIM, args.samples), rng)
    report["continuous_generated"] = spearman_table(continuous, image_measures((images + 1) / 2))
    report["continuous_q_on_test"] = spearman_table(q_codes, image_measures(x_test))
    report["settings"] = {
        "per_code": args.per_code,
        "samples": args.samples,
        "seed": args.seed,
        "classifier": args.classifier,
    }
    return report


def markdown(report):
    categorical, generated = report["categorical"], report["generated"]
    lines = [
        f"Evaluation of `{report['model_dir']}`",
        "",
        "| metric | value | reference |",
        "|---|---|---|",
        f"| categorical accuracy (Hungarian, {categorical['test_images']} test images) "
        f"| {categorical['hungarian_accuracy']:.4f} | paper about 0.95 |",
        f"| purity (majority vote) | {categorical['purity']:.4f} | |",
        f"| NMI | {categorical['nmi']:.4f} | |",
        f"| ARI | {categorical['ari']:.4f} | |",
        f"| generated purity (Hungarian, {generated['images']} images) "
        f"| {generated['purity_hungarian']:.4f} | |",
        f"| Inception Score (MNIST classifier) | {generated['inception_score']:.3f} "
        f"| test set {generated['inception_score_test_set']:.3f} |",
        f"| Frechet distance (classifier features) | {generated['frechet_distance']:.3f} "
        f"| train vs test {generated['frechet_distance_train_vs_test']:.3f} |",
        f"| MNIST classifier test accuracy | {report['classifier_test_accuracy']:.4f} | |",
        "",
        "Spearman correlation of the continuous codes with image measures:",
        "",
        "| code | where | " + " | ".join(MEASURES) + " |",
        "|---|---|" + "---|" * len(MEASURES),
    ]
    for where, key in [
        ("generated", "continuous_generated"),
        ("Q on test", "continuous_q_on_test"),
    ]:
        for code, row in report[key].items():
            values = " | ".join(f"{row[m]:+.3f}" for m in MEASURES)
            lines.append(f"| {code} | {where} | {values} |")
    return "\n".join(lines) + "\n"


def plot_confusion(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    confusion = np.array(report["categorical"]["confusion"])
    mapping = report["categorical"]["code_to_digit"]
    order = sorted(range(CATEGORICAL_DIM), key=lambda code: mapping[str(code)])
    figure, axis = plt.subplots(figsize=(6.4, 5.2))
    sns.heatmap(
        confusion[order],
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        ax=axis,
        yticklabels=[f"code {c} -> {mapping[str(c)]}" for c in order],
        annot_kws={"fontsize": 7},
    )
    axis.set(xlabel="true digit", ylabel="categorical code (Q's argmax)")
    axis.set_title(
        f"Test set: Hungarian accuracy {report['categorical']['hungarian_accuracy']:.4f}",
        fontsize=10,
    )
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


def write_outputs(report, out):
    with atomic_path(os.path.join(out, "evaluation.json")) as temporary:
        with open(temporary, "w") as handle:
            json.dump(report, handle, indent=2)
    with atomic_path(os.path.join(out, "evaluation.md")) as temporary:
        with open(temporary, "w") as handle:
            handle.write(markdown(report))
    plot_confusion(report, os.path.join(out, "confusion_matrix.png"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", default="model", help="folder of the saved models")
    parser.add_argument("--out", default="figures", help="folder for the report files")
    parser.add_argument("--data", default="", help="Keras-layout mnist.npz (as infogan.py)")
    parser.add_argument("--classifier", default=DEFAULT_CLASSIFIER, help="cached classifier")
    parser.add_argument("--classifier-epochs", type=int, default=5, help="if trained here")
    parser.add_argument("--per-code", type=int, default=1000, help="images per categorical value")
    parser.add_argument("--samples", type=int, default=5000, help="images for the code measures")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated samples")
    args = parser.parse_args(argv)
    if min(args.per_code, args.samples, args.classifier_epochs) < 1:
        raise UserError("--per-code, --samples and --classifier-epochs must be >= 1")
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
