"""Render the c1 / c2 latent sweeps of a saved InfoGAN generator (the paper's Figure 2).

    python generate_sample_latent.py                          # the committed model/
    python generate_sample_latent.py --model runs/mnist_seed0  # a run folder, into its figures/
    python generate_sample_latent.py --model path/to/infogan_model_generator.keras \
        --out sweeps --columns 9 --low -2 --high 2 --seed 3

Writes <out>/generated_vary_c1.png and <out>/generated_vary_c2.png: row = categorical value 0..9,
column = one continuous code swept from --low to --high (the paper sweeps -2..2, past the training
range -1..1), the other code at 0, the noise fixed along each row.
"""

import argparse
import math
import os
import sys

import numpy as np

from utils import (
    CATEGORICAL_DIM,
    CONTINUOUS_DIM,
    RunPaths,
    UserError,
    image_grid,
    latent_sweep,
    load_generator,
    run_folder,
    save_figure,
)


def render_sweep(generator, code_index, values, seed, path):
    """One sweep figure: a grid of generated digits with the code values as column labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = generator(latent_sweep(code_index, values, seed), training=False)
    grid = image_grid(np.asarray(images), CATEGORICAL_DIM, len(values))
    cell = grid.shape[1] / len(values)
    figure, axis = plt.subplots(figsize=(0.62 * len(values) + 1.0, 0.62 * CATEGORICAL_DIM + 0.9))
    axis.imshow(grid, cmap="gray", vmin=0, vmax=255)
    axis.set_xticks([cell * (i + 0.5) for i in range(len(values))], [f"{v:+.1f}" for v in values])
    axis.set_yticks(
        [cell * (i + 0.5) for i in range(CATEGORICAL_DIM)], [str(i) for i in range(CATEGORICAL_DIM)]
    )
    axis.set_xlabel(f"c{code_index + 1}")
    axis.set_ylabel("categorical code")
    axis.tick_params(length=0, labelsize=8)
    axis.set_title(f"varying c{code_index + 1}, noise fixed along each row", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path, dpi=110)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="model", help="generator: .keras file, run or model/")
    parser.add_argument("--out", default="", help="output folder (default: the run's figures/)")
    parser.add_argument("--columns", type=int, default=10, help="values of the swept code")
    parser.add_argument("--low", type=float, default=-2.0, help="first value of the sweep")
    parser.add_argument("--high", type=float, default=2.0, help="last value of the sweep")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fixed noise")
    args = parser.parse_args(argv)
    args.out = args.out or RunPaths(run_folder(args.model)).figures
    if not 2 <= args.columns <= 50:
        raise UserError(f"--columns must be in 2..50, got {args.columns}")
    if not (math.isfinite(args.low) and math.isfinite(args.high)):
        raise UserError(f"--low and --high must be finite numbers, got {args.low}, {args.high}")
    if not args.low < args.high:
        raise UserError(f"--low ({args.low}) must be below --high ({args.high})")
    return args


def main(argv=None):
    try:
        args = parse_args(argv)
        generator = load_generator(args.model)
        values = np.linspace(args.low, args.high, args.columns)
        for code_index in range(CONTINUOUS_DIM):
            path = os.path.join(args.out, f"generated_vary_c{code_index + 1}.png")
            render_sweep(generator, code_index, values, args.seed, path)
            print(f"wrote {path}")
    except UserError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
