"""Measure training speed against what this machine can do, in one run.

    python benchmark.py                       # batch 128, float32 and the auto precision
    python benchmark.py --batch-sizes 64 128 256 --precisions float32
    python benchmark.py --steps 3 --windows 2 --epoch-steps 4 --out /tmp/bench.json  # smoke test

Reports, for the real infogan.py training step (same function, same options):
- step time and real images/s: median over --windows windows of --steps steps, after warm-up;
- the epoch loop with data input (infogan.epoch_dataset) for --epoch-steps steps;
- for each --precisions (default: float32, and what infogan.py's --precision auto picks here),
  the machine's matrix-multiply rate in TensorFlow in that compute dtype (the practical ceiling),
  the model FLOPs of one training step counted from the layer shapes, the achieved GFLOP/s and
  the utilization = achieved / ceiling of the same dtype, and achieved / the fp32 ceiling (the
  machine's fp32 matmul rate, which the utilization target is stated against);
- the peak resident memory of this process (which holds MNIST and every model it benchmarked;
  infogan.py logs its own peak per epoch in losses_per_epoch.csv).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

import infogan
from utils import PRECISIONS, UserError, atomic_path, load_mnist, peak_rss_mb

COMPUTE_DTYPE = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16}


def layer_macs(network):
    """Multiply-accumulates of one forward pass of one example, per layer, from the layer shapes."""
    macs = {}
    for layer in network.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            macs[layer.name] = int(np.prod(layer.kernel.shape))
        elif kind == "Conv2D":  # each output pixel: k*k*c_in*c_out
            out_h, out_w = layer.output.shape[1:3]
            macs[layer.name] = int(out_h * out_w * np.prod(layer.kernel.shape))
        elif kind == "Conv2DTranspose":  # each INPUT pixel scatters k*k*c_in*c_out
            in_h, in_w = layer.input.shape[1:3]
            macs[layer.name] = int(in_h * in_w * np.prod(layer.kernel.shape))
    return macs


def training_step_flops(generator, discriminator, augmented=False):
    """FLOPs (2 per MAC) of one InfoGAN training step per real image, counting matmuls and convs.

    Forward: G once, the discriminator on the real and on the fake batch. Backward: d_loss through
    the discriminator on both batches (weight and input gradients, none into the images);
    g_loss through the discriminator on the fakes (input gradients only) and through G (weight
    gradients, and input gradients below the first layer). Elementwise, BN and Adam are left out.
    `augmented` (--lambda-cat-augmented > 0) adds a third discriminator pass, on the moved fakes:
    forward, weight gradients, and input gradients down to the moved images ONCE. That term is in
    d_loss and in g_loss with the same weight, so both backward passes through it are the same
    computation, and TF's graph optimizer runs it once (a profile of the compiled step shows one
    input-gradient op per layer of that pass, two for the pass on the fakes).
    """
    g, d = layer_macs(generator), layer_macs(discriminator)
    g_total, d_total = sum(g.values()), sum(d.values())
    d_first, g_first = d["d_conv1"], g["g_fc1"]
    macs = (
        g_total  # G forward
        + 2 * d_total  # D forward, real and fake
        + 2 * (d_total + d_total - d_first)  # d_loss backward on real and fake
        + d_total  # g_loss backward through D on the fakes (input gradients)
        + g_total + g_total - g_first  # g_loss backward through G
    )  # fmt: skip
    if augmented:
        macs += 3 * d_total  # forward, weight gradients, input gradients
    return 2 * macs


def matmul_gflops(size=2048, repeats=20, dtype=tf.float32):
    """The machine's matrix-multiply rate in TensorFlow in `dtype`, best of three timed runs."""
    a = tf.cast(tf.random.uniform((size, size)), dtype)
    b = tf.cast(tf.random.uniform((size, size), -1, 1) / size**0.5, dtype)  # bounded values

    @tf.function
    def chain():
        x = a
        for _ in range(repeats):  # each product needs the last, so none can be skipped or merged
            x = tf.matmul(x, b)
        return x

    chain().numpy()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        chain().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def time_steps(train_step, batches, seeds, steps):
    start = time.perf_counter()
    for i in range(steps):
        losses = train_step(batches[i % len(batches)], seeds[:, i % seeds.shape[1]])
    float(losses["d_loss"])  # wait for the last step
    return (time.perf_counter() - start) / steps


def benchmark_batch_size(batch_size, precision, x_train, args, config):
    keras.utils.set_random_seed(0)
    config = infogan.Config(**{**vars(config), "batch_size": batch_size, "precision": precision})
    generator, discriminator = infogan.build_models(precision, config.noise_scale)
    g_optimizer, d_optimizer = infogan.make_optimizers(generator, discriminator, config)
    train_step = infogan.make_train_step(generator, discriminator, g_optimizer, d_optimizer, config)
    seeds = tf.random.Generator.from_seed(0).make_seeds(max(args.steps, args.epoch_steps))
    batches = list(infogan.epoch_dataset(x_train, batch_size, 0, 1).take(8))

    start = time.perf_counter()
    time_steps(train_step, batches, seeds, 1)
    compile_seconds = time.perf_counter() - start
    time_steps(train_step, batches, seeds, args.warmup)
    windows = [time_steps(train_step, batches, seeds, args.steps) for _ in range(args.windows)]
    step_seconds = statistics.median(windows)

    # The epoch loop as infogan.py runs it: input pipeline, step, loss read-back each step.
    start, steps = time.perf_counter(), 0
    for real_images in infogan.epoch_dataset(x_train, batch_size, 0, 2).take(args.epoch_steps):
        losses = train_step(real_images, seeds[:, steps])
        _ = {name: float(value) for name, value in losses.items()}
        steps += 1
    loop_seconds = (time.perf_counter() - start) / steps

    flops = (
        training_step_flops(generator, discriminator, config.lambda_cat_augmented > 0) * batch_size
    )
    return {
        "batch_size": batch_size,
        "precision": precision,
        "compile_seconds": compile_seconds,
        "step_ms": 1000 * step_seconds,
        "step_ms_windows": [1000 * w for w in windows],
        "images_per_second": batch_size / step_seconds,
        "epoch_loop_images_per_second": batch_size / loop_seconds,
        "epoch_seconds_estimate": (len(x_train) // batch_size) * loop_seconds,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / step_seconds / 1e9,
    }


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpus": gpus,
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128])
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        default=["float32", "auto"],
        help="auto is what infogan.py picks on this machine",
    )
    parser.add_argument("--steps", type=int, default=20, help="steps per timing window")
    parser.add_argument("--windows", type=int, default=5, help="timing windows (median taken)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps after compiling")
    parser.add_argument("--epoch-steps", type=int, default=100, help="steps of the epoch loop")
    parser.add_argument("--data", default="", help="Keras-layout mnist.npz (as infogan.py)")
    parser.add_argument("--out", default=os.path.join("figures", "benchmark.json"))
    args = parser.parse_args(argv)
    try:
        if min(args.steps, args.windows, args.epoch_steps, *args.batch_sizes) < 1:
            raise UserError("--steps, --windows, --epoch-steps and --batch-sizes must be >= 1")
        precisions = list(dict.fromkeys(infogan.training_precision(p) for p in args.precisions))
        x_train = tf.constant(load_mnist(args.data or None)[0])
        config = infogan.Config()
        rows = [
            benchmark_batch_size(b, p, x_train, args, config)
            for p in precisions
            for b in args.batch_sizes
        ]
        # Measured after the training steps: run before them, the big matmul chain slowed the
        # tf.data epoch loop that follows (to 256 ms a step from 170 in a probe, bf16).
        # float32 always: the utilization target is stated against the fp32 matmul rate.
        ceilings = {
            p: matmul_gflops(dtype=COMPUTE_DTYPE[p])
            for p in dict.fromkeys(["float32", *precisions])
        }
    except UserError as error:
        sys.exit(f"error: {error}")
    for row in rows:
        row["utilization"] = row["achieved_gflops"] / ceilings[row["precision"]]
        row["utilization_of_fp32_ceiling"] = row["achieved_gflops"] / ceilings["float32"]
    report = {
        "machine": machine_description(),
        "matmul_gflops": ceilings,
        "peak_rss_mb": peak_rss_mb(),
        "results": rows,
        "command": "python benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    with atomic_path(args.out) as temporary, open(temporary, "w") as handle:
        json.dump(report, handle, indent=2)

    print(f"machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
          f"GPUs: {report['machine']['gpus'] or 'none'}")  # fmt: skip
    for precision, ceiling in ceilings.items():
        print(f"{precision} matmul ceiling: {ceiling:.0f} GFLOP/s")
    print(f"peak RSS of this process: {report['peak_rss_mb']:.0f} MB")
    print(
        "precision       batch  step_ms  img/s(step)  img/s(epoch loop)  GFLOP/step  GFLOP/s"
        "  utilization  of fp32 ceiling"
    )
    for r in rows:
        print(
            f"{r['precision']:14s}  "
            f"{r['batch_size']:5d}  {r['step_ms']:7.1f}  {r['images_per_second']:11.0f}  "
            f"{r['epoch_loop_images_per_second']:17.0f}  {r['gflop_per_step']:10.2f}  "
            f"{r['achieved_gflops']:7.0f}  {r['utilization']:11.0%}  "
            f"{r['utilization_of_fp32_ceiling']:15.0%}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
