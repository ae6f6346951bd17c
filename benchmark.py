"""Measure training speed against what this machine can do, in one run.

    python benchmark.py                          # batch 128, float32 and the auto precision
    python benchmark.py --precisions float32 --rounds 5
    python benchmark.py --rounds 1 --window 4 --out /tmp/bench.json   # smoke test

For the real infogan.py training (same functions, default options) it alternates, in one
process, windows of --window steps of
- the STEP: the compiled training step on batches already in memory, called in a Python loop,
  its losses read once at the end of the window (the compute alone);
- the LOOP: infogan.train_epoch, as a run trains (input pipeline, the compiled step called
  per batch, losses read, checked and written to TensorBoard a tenth of an epoch at a time);
and reports for each the median and the spread (min, max) over --rounds rounds, the ratio
loop / step, real images/s, the model FLOPs of a step (counted from the layer shapes), the
achieved GFLOP/s and the utilization against this machine's matmul rate in TensorFlow in the
same compute dtype and in float32 (the practical ceilings), and the process's peak memory.
With --profile N it also traces N steps with TensorFlow's profiler (into --profile-dir, which
TensorBoard's profile plugin opens) and sums the time of the step's ops by kind (matmuls
and convolutions, Adam, casts, image resampling, the rest): where a step's time goes.
With --epoch-run it also trains two real epochs per precision (`python infogan.py --epochs 2`,
in a scratch folder) between two step windows, and reports the second epoch's loop and
whole-epoch times, the latter against those two windows, and its peak memory (the GPU's too
where there is one): with a GPU at hand, this one command makes every GPU figure.
Compare speeds only side by side on one machine: machines (and one machine over time) differ.
"""

import argparse
import collections
import glob
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import pandas as pd

import infogan
from utils import (
    PRECISIONS,
    UserError,
    load_dataset,
    peak_rss_mb,
    render_into,
    step_seeds,
    write_json,
)

tf, keras, np = infogan.tf, infogan.keras, infogan.np
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
    `augmented` adds the third discriminator pass, on the moved fakes: forward, weight gradients,
    and input gradients ONCE (the term is in d_loss and g_loss alike, and TF's graph optimizer
    runs the identical backward passes once; a profile of the step shows it).
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


def benchmark_precision(precision, x_train, args):
    """Interleaved step and loop windows for one precision; times in ms per step."""
    keras.utils.set_random_seed(0)
    config = infogan.Config(precision=precision, progress=False, batch_size=args.batch_size)
    strategy = tf.distribute.get_strategy()
    training = infogan.Training(config, strategy, precision)
    one_step = training.train_step  # the compiled step infogan.py runs
    batches = list(infogan.dataset_iterator(strategy, x_train, config, 1))[:8]
    seeds = tf.constant(step_seeds(0, 1, args.window))
    writer = tf.summary.create_noop_writer()
    steps_per_epoch = int(x_train.shape[0]) // config.batch_size

    def step_window():
        start = time.perf_counter()
        for index in range(args.window):
            losses = one_step(batches[index % len(batches)], seeds[index])
        float(losses["d_loss"])  # wait for the last step
        return (time.perf_counter() - start) / args.window

    def loop_window(epoch):
        clock = infogan.Clock(args.window, config.batch_size)
        start = time.perf_counter()
        infogan.train_epoch(training, x_train, config, epoch, clock, writer, args.window)
        return (time.perf_counter() - start) / args.window

    started = time.perf_counter()
    step_window(), loop_window(1)  # trace both, warm up
    compile_seconds = time.perf_counter() - started
    step_times, loop_times = [], []
    for round_index in range(args.rounds):  # alternate, so a slow spell of the machine hits both
        step_times.append(step_window())
        loop_times.append(loop_window(2 + round_index))
    flops = training_step_flops(
        training.generator, training.discriminator, config.lambda_cat_augmented > 0
    ) * config.batch_size  # fmt: skip

    def summary(times):
        return {
            "ms_median": 1000 * statistics.median(times),
            "ms_min": 1000 * min(times),
            "ms_max": 1000 * max(times),
            "ms_windows": [1000 * t for t in times],
            "images_per_second": config.batch_size / statistics.median(times),
        }

    step, loop = summary(step_times), summary(loop_times)
    epoch = {}
    if args.epoch_run:  # between two step windows: the machine's speed drifts within minutes
        before = step_window()
        run = epoch_run(precision, args)
        after = step_window()
        run["adjacent_step_ms"] = [1000 * before, 1000 * after]
        run["epoch_over_adjacent_steps"] = run["epoch_seconds"] / (
            steps_per_epoch * (before + after) / 2
        )
        epoch = {"epoch_run": run}
    profile = {}
    if args.profile:
        logdir = os.path.join(args.profile_dir, precision)
        profile = {"profile": profile_step(one_step, batches, seeds, args.profile, logdir)}
    return {
        "precision": precision,
        "batch_size": config.batch_size,
        "window_steps": args.window,
        "rounds": args.rounds,
        "compile_seconds": compile_seconds,
        "step": step,
        "loop": loop,
        "loop_over_step": loop["ms_median"] / step["ms_median"],
        "epoch_seconds_estimate": steps_per_epoch * loop["ms_median"] / 1000,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops_step": flops / step["ms_median"] / 1e6,
        "achieved_gflops_loop": flops / loop["ms_median"] / 1e6,
        **epoch,
        **profile,
    }


# Op kinds of the profile summary, by TensorFlow op type (oneDNN's kernels carry an _Mkl prefix).
OP_KINDS = {
    "matmuls and convolutions": ("MatMul", "Conv2D", "Conv2DBackpropInput",
                                 "Conv2DBackpropFilter", "BatchMatMulV2"),
    "Adam updates": ("ResourceApplyAdam",),
    "dtype casts": ("Cast",),
    "image resampling and pooling": ("ImageProjectiveTransformV3", "MaxPool", "MaxPoolGrad",
                                     "MaxPoolGradV2"),
}  # fmt: skip


def op_kind(op_type):
    """The OP_KINDS entry of a TensorFlow op type, matched with oneDNN's prefixes removed."""
    base = op_type
    for prefix in ("_Mkl", "Native", "_Fused", "Fused"):
        base = base.removeprefix(prefix)
    base = base.removesuffix("WithBias")
    for kind, types in OP_KINDS.items():
        if op_type in types or base in types:
            return kind
    return "other ops (elementwise, batch norm, reductions, losses)"


def read_op_times(paths):
    """{op type: summed duration in ms} of the TensorFlow ops in profiler traces (.xplane.pb
    files), over all the compute threads, or None where this TensorFlow cannot read them.

    The trace (an XSpace protocol buffer) has no public reader in TensorFlow: the proto module
    is TSL's, imported guardedly, and a missing one leaves the summary out, not the benchmark."""
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:
        return None
    times = collections.Counter()
    for path in paths:
        space = xplane_pb2.XSpace()
        with open(path, "rb") as handle:
            space.ParseFromString(handle.read())
        for plane in space.planes:
            for line in plane.lines:
                for event in line.events:  # a TensorFlow op's event is named "op name:op type"
                    name = plane.event_metadata[event.metadata_id].name
                    match = re.fullmatch(r"[^:\s]+:([A-Za-z_]\w*)", name)
                    if match:
                        times[match.group(1)] += event.duration_ps / 1e9
    return dict(times)


def profile_step(one_step, batches, seeds, steps, logdir):
    """Trace `steps` compiled steps; the op time per step by kind, and the step's wall time."""
    one_step(batches[0], seeds[0])["d_loss"].numpy()  # traced and warm before the trace starts
    pattern = os.path.join(logdir, "**", "*.xplane.pb")
    earlier = set(glob.glob(pattern, recursive=True))  # traces of earlier runs stay out
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for index in range(steps):
        losses = one_step(batches[index % len(batches)], seeds[index % len(seeds)])
    float(losses["d_loss"])
    wall_ms = 1000 * (time.perf_counter() - start) / steps
    tf.profiler.experimental.stop()
    op_times = read_op_times(sorted(set(glob.glob(pattern, recursive=True)) - earlier))
    if op_times is None:
        print("note: this TensorFlow has no trace reader; open the trace in TensorBoard")
        return {"logdir": logdir, "steps": steps, "wall_ms": wall_ms}
    by_kind = collections.Counter()
    for op_type, ms in op_times.items():
        by_kind[op_kind(op_type)] += ms / steps
    top = sorted(op_times.items(), key=lambda item: -item[1])[:12]
    return {
        "logdir": logdir,
        "steps": steps,
        "wall_ms": wall_ms,  # under the profiler, a little slower than the timed windows
        "op_ms_by_kind": dict(by_kind.most_common()),
        "op_ms_total": sum(by_kind.values()),
        "top_op_types_ms": {op_type: ms / steps for op_type, ms in top},
    }


def epoch_run(precision, args):
    """A real 2-epoch `python infogan.py` in a scratch folder: the CSV row of its second epoch
    (the first also traces the step and warms up)."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   "infogan.py"), "--epochs", "2", "--out", out, "--precision", precision,
                   "--batch-size", str(args.batch_size), "--dataset", args.dataset,
                   "--no-progress"] + (["--data", args.data] if args.data else [])  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError(f"the epoch run failed: {(result.stderr or result.stdout)[-300:]}")
        row = pd.read_csv(os.path.join(out, "figures", "losses_per_epoch.csv")).iloc[-1]
    keys = ("seconds", "epoch_seconds", "images_per_second", "peak_rss_mb", "peak_gpu_mb")
    return {key: float(row[key]) for key in keys if key in row}


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=["float32", "auto"],
                        help="auto is what infogan.py picks on this machine")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--window", type=int, default=94, help="steps per timing window")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of one step + one loop window"
    )
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    parser.add_argument("--data", default="", help="a data file or folder, as infogan.py --data")
    parser.add_argument("--epoch-run", action="store_true", help="also train two real epochs")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="STEPS",
        help="also trace this many steps and sum their op time by kind",
    )
    parser.add_argument("--profile-dir", default=os.path.join("runs", "benchmark_profile"),
                        help="where the traces go (runs/ is not committed)")  # fmt: skip
    parser.add_argument("--matmul-size", type=int, default=2048, help="of the ceiling's matmuls")
    parser.add_argument("--out", default=os.path.join("docs", "benchmark.json"))
    parser.add_argument("--readme", default="", help="also render the table into this file")
    args = parser.parse_args(argv)
    try:
        if min(args.window, args.rounds, args.batch_size) < 1 or args.profile < 0:
            raise UserError("--window, --rounds and --batch-size must be >= 1, --profile >= 0")
        precisions = list(dict.fromkeys(infogan.training_precision(p) for p in args.precisions))
        x_train = tf.constant(load_dataset(args.dataset, args.data or None)[0])
        if args.window * args.batch_size > int(x_train.shape[0]):
            raise UserError("--window steps of --batch-size must fit in one epoch of the data")
        rows = [benchmark_precision(precision, x_train, args) for precision in precisions]
        # Measured after the training: run before it, the big matmul chain slowed the tf.data
        # loop that followed (256 against 170 ms a step in a probe, bf16).
        ceilings = {
            p: matmul_gflops(args.matmul_size, dtype=COMPUTE_DTYPE[p])
            for p in dict.fromkeys(["float32", *precisions])
        }
    except UserError as error:
        sys.exit(f"error: {error}")
    for row in rows:
        for kind in ("step", "loop"):
            achieved = row[f"achieved_gflops_{kind}"]
            row[f"utilization_{kind}"] = achieved / ceilings[row["precision"]]
            row[f"utilization_{kind}_of_fp32_ceiling"] = achieved / ceilings["float32"]
    report = {
        "machine": machine_description(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "matmul_gflops": ceilings,
        "peak_rss_mb": peak_rss_mb(),
        "results": rows,
    }
    write_json(report, args.out)
    if args.readme:  # between the markers of the table's file, as multiseed.py does
        try:
            render_into(args.readme, args.out, markdown(report) + "\n")
        except UserError as error:
            sys.exit(f"error: {error}")
    print(markdown(report))
    print(f"wrote {args.out}")


def markdown(report):
    machine = report["machine"]
    lines = [
        f"{machine['cpu']}, {machine['cores']} cores, GPUs: {machine['gpus'] or 'none'}, "
        f"TensorFlow {machine['tensorflow']}; matmul ceilings (GFLOP/s): "
        + ", ".join(f"{p} {v:.0f}" for p, v in report["matmul_gflops"].items()),
        "",
        "| precision | step ms (min-max) | loop ms (min-max) | loop / step | img/s step | "
        "img/s loop | GFLOP/step | utilization loop (of fp32) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        step, loop = r["step"], r["loop"]
        lines.append(
            f"| {r['precision']} | {step['ms_median']:.1f} ({step['ms_min']:.1f}-"
            f"{step['ms_max']:.1f}) | {loop['ms_median']:.1f} ({loop['ms_min']:.1f}-"
            f"{loop['ms_max']:.1f}) | {r['loop_over_step']:.3f} | {step['images_per_second']:.0f}"
            f" | {loop['images_per_second']:.0f} | {r['gflop_per_step']:.2f} | "
            f"{r['utilization_loop']:.0%} ({r['utilization_loop_of_fp32_ceiling']:.0%}) |"
        )
    for r in report["results"]:
        if "epoch_run" in r:
            run = r["epoch_run"]
            gpu = f", GPU peak {run['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in run else ""
            lines.append(
                f"\n{r['precision']} real epoch (the 2nd): {run['seconds']:.1f} s loop "
                f"({run['images_per_second']:.0f} img/s), {run['epoch_seconds']:.1f} s with its "
                f"outputs, peak {run['peak_rss_mb']:.0f} MB{gpu}; "
                f"{run['epoch_over_adjacent_steps'] - 1:+.1%} against the step windows just "
                f"before and after it ({run['adjacent_step_ms'][0]:.1f} and "
                f"{run['adjacent_step_ms'][1]:.1f} ms)"
            )
    for r in report["results"]:
        profile = r.get("profile", {})
        if "op_ms_by_kind" in profile:
            parts = ", ".join(
                f"{kind} {ms:.0f} ({ms / profile['op_ms_total']:.0%})"
                for kind, ms in profile["op_ms_by_kind"].items()
            )
            lines.append(
                f"\n{r['precision']} profile ({profile['steps']} steps, "
                f"{profile['wall_ms']:.0f} ms a step), op time per step summed over the threads, "
                f"ms: {parts}"
            )
    lines.append(f"\npeak memory of this process: {report['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
