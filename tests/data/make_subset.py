"""Make the small real data sets the tests train and evaluate on (committed beside this file).

    python tests/data/make_subset.py --mnist ~/.keras/datasets/mnist.npz \
        --fashion /usr/share/datasets/fashion-mnist

mnist_small.npz: the first 320 training and 200 test images of MNIST (the Keras-layout
mnist.npz); fashion_small: the first 320 training and 200 test images of Fashion-MNIST (Debian's
dataset-fashion-mnist files), as the four IDX .gz files of the MNIST family.
"""

import argparse
import gzip
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from utils import read_data

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN, TEST = 320, 200


def write_idx(path, array):
    """An IDX file of unsigned bytes: magic 0x0000080N, the dimensions, the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape
    )
    with gzip.GzipFile(path, "wb", mtime=0) as handle:  # mtime 0: the same bytes on every run
        handle.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def subset(source):
    x_train, y_train, x_test, y_test = read_data(source)
    return x_train[:TRAIN], y_train[:TRAIN], x_test[:TEST], y_test[:TEST]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mnist", required=True, help="Keras-layout mnist.npz")
    parser.add_argument("--fashion", required=True, help="folder of Fashion-MNIST's IDX files")
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = subset(args.mnist)
    np.savez_compressed(
        os.path.join(HERE, "mnist_small.npz"),
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
    )
    folder = os.path.join(HERE, "fashion_small")
    os.makedirs(folder, exist_ok=True)
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]  # fmt: skip
    for name, array in zip(names, subset(args.fashion), strict=True):
        write_idx(os.path.join(folder, name), array)


if __name__ == "__main__":
    main()
