"""Assemble the per-epoch sample grids into the training GIF.

    python generate_gif.py                                # figures/ -> gif/train_result.gif
    python generate_gif.py --figures runs/mnist_seed0/figures   # -> runs/mnist_seed0/gif/
    python generate_gif.py --figures runs/mnist_seed0/figures --out train.gif --duration 0.4

Reads <figures>/image_generated_epoch_<N>.png in order of the epoch NUMBER (2 before 10), stamps
"epoch N" on each frame, holds the last frame longer, and writes <run>/gif/train_result.gif
(the run being the folder that holds figures/). Needs no TensorFlow.
"""

import argparse
import glob
import math
import os
import re
import sys

import numpy as np

from utils import UserError, atomic_path

FRAME_PATTERN = re.compile(r"image_generated_epoch_(\d+)\.png$")


def epoch_frames(folder):
    """[(epoch, path)] of the per-epoch grids in `folder`, sorted by epoch number."""
    found = []
    for path in glob.glob(os.path.join(folder, "image_generated_epoch_*.png")):
        match = FRAME_PATTERN.search(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def stamped_frame(path, epoch):
    """The grid as RGB with a caption band "epoch N" above it."""
    from PIL import Image, ImageDraw

    try:
        image = Image.open(path).convert("RGB")
    except OSError as error:
        raise UserError(f"{path}: not a readable image ({error})") from None
    band = max(16, image.height // 16)
    frame = Image.new("RGB", (image.width, image.height + band), "white")
    frame.paste(image, (0, band))
    ImageDraw.Draw(frame).text((4, band // 4), f"epoch {epoch}", fill="black")
    return np.asarray(frame)


def make_gif(folder, out, duration, last_hold):
    import imageio.v2 as imageio

    frames = epoch_frames(folder)
    if not frames:
        raise UserError(
            f"{folder}: no image_generated_epoch_<N>.png frames; train first with "
            f"`python infogan.py` or point --figures at a run's figures folder"
        )
    images = [stamped_frame(path, epoch) for epoch, path in frames]
    sizes = {image.shape for image in images}
    if len(sizes) > 1:
        raise UserError(f"{folder}: frames differ in size {sorted(sizes)}; they are from two runs")
    durations = [duration] * (len(images) - 1) + [duration * last_hold]
    with atomic_path(out) as temporary:
        imageio.mimsave(temporary, images, format="GIF", duration=durations, loop=0)
    return [epoch for epoch, _ in frames]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--figures", default="figures", help="folder of the per-epoch grids")
    parser.add_argument("--out", default="", help="GIF path (default: <run>/gif/train_result.gif)")
    parser.add_argument("--duration", type=float, default=0.5, help="seconds per frame")
    parser.add_argument("--last-hold", type=float, default=4.0, help="last frame: x duration")
    args = parser.parse_args(argv)
    try:
        if not all(math.isfinite(v) and v > 0 for v in (args.duration, args.last_hold)):
            raise UserError(
                f"--duration and --last-hold must be numbers > 0, got {args.duration}, "
                f"{args.last_hold}"
            )
        run = os.path.dirname(os.path.abspath(args.figures))
        args.out = args.out or os.path.join(run, "gif", "train_result.gif")
        if os.path.isdir(args.out):
            raise UserError(f"--out {args.out} is a folder; give the GIF's file name")
        epochs = make_gif(args.figures, args.out, args.duration, args.last_hold)
        print(f"wrote {args.out}: epochs {epochs[0]}..{epochs[-1]}, {len(epochs)} frames")
    except UserError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
