"""Train and evaluate several seeds with the same options, and tabulate them.

    python multiseed.py --data ~/mnist.npz                    # seeds 0-4, our recipe
    python multiseed.py --seeds 0 1 2 --dataset fashion_mnist --no-targets \
        --table figures/fashion_mnist/multiseed
    python multiseed.py --skip-training --runs runs/final --readme README.md   # re-table only
    python multiseed.py --seeds 5 --runs runs/paper -- --preset paper   # after --: infogan.py
    python multiseed.py --seeds 0 1 2 3 4 --skip-training --runs runs/final \
        --rows-from figures/multiseed.json         # seeds whose run folders are elsewhere

Each seed trains in its own folder <runs>/<dataset>_seed<N> with `python infogan.py`, which
resumes an interrupted run and skips a finished one, so rerunning this command continues where
it stopped. Each run is then evaluated with `python evaluate.py` into its figures/ folder. The
table (a row per seed, then median, worst and best, and the targets met or not) goes to --table
as Markdown and JSON, and with --readme into the README between the table's two markers.
With --rows-from, a seed whose run folder is not under --runs takes its row from an earlier
table of the same options (runs trained on another machine, say).
"""

import argparse
import os
import statistics
import subprocess
import sys

import pandas as pd

from utils import (
    BEFORE_OPTION_EXISTED,
    REMOVED_OPTIONS,
    UserError,
    read_json,
    render_into,
    write_json,
    write_text,
)

# column: (label, format, True if higher is better), read by row_for
COLUMNS = {
    "test_accuracy": ("test acc", "{:.4f}", True),
    "accuracy_epoch_3": ("acc. epoch 3", "{:.4f}", True),
    "nmi": ("NMI", "{:.3f}", True),
    "generated_purity": ("gen. purity", "{:.4f}", True),
    "frechet_distance": ("FD", "{:.2f}", False),
    "fd_over_floor": ("FD / floor", "{:.2f}", False),
    "rotation_clean_rows": ("rotation code: clean slant rows", "{:.1%}", True),
    "rotation_turn_degrees": ("rotation code: turn", "{:.0f}°", True),
    "style_clean_rows": ("other code: clean style rows", "{:.1%}", True),
    "style_code_slant_clean_rows": ("other code: clean slant rows", "{:.1%}", False),
    "style_code_turn_degrees": ("other code: turn", "{:.0f}°", False),
    "sweep_purity": ("sweep purity", "{:.4f}", True),
}
# target: (column, which summary row it is judged on, bound, at least (True) or at most)
TARGETS = {
    "test accuracy >= 0.97 in every seed": ("test_accuracy", "worst", 0.97, True),
    "test accuracy median >= 0.98": ("test_accuracy", "median", 0.98, True),
    "accuracy >= 0.95 by epoch 3 (median)": ("accuracy_epoch_3", "median", 0.95, True),
    "a rotation code with >= 95 % clean rows in every seed": (
        "rotation_clean_rows", "worst", 0.95, True),
    "the other code a width or thickness code with >= 90 % clean rows in every seed": (
        "style_clean_rows", "worst", 0.90, True),
    # A width code moves a leaning digit's slant monotonically too, by a few degrees (test_measures:
    # ~9 for a 20-degree lean stretched by +-25 %), so the turn, not the clean rows, tells a
    # second rotation code.
    "the other code not a second rotation code (turns the digit < 10°) in every seed": (
        "style_code_turn_degrees", "worst", 10.0, False),
    "the sweeps keep the class (sweep purity >= 0.99) in every seed": (
        "sweep_purity", "worst", 0.99, True),
    "FD at most 2.5x the train-vs-test floor (median)": ("fd_over_floor", "median", 2.5, False),
    "generated purity >= 0.99 in every seed": ("generated_purity", "worst", 0.99, True),
}  # fmt: skip


def row_for(seed, run_dir):
    """One seed's numbers from its evaluation.json and per-epoch CSV."""
    figures = os.path.join(run_dir, "figures")
    report = read_json(os.path.join(figures, "evaluation.json"), "evaluation")
    epochs = pd.read_csv(os.path.join(figures, "losses_per_epoch.csv"))
    accuracy = epochs.set_index("epoch")["test_accuracy"]
    roles = report["code_roles"]
    return {
        "seed": seed,
        "epochs": int(epochs["epoch"].max()),
        "test_accuracy": report["categorical"]["hungarian_accuracy"],
        "accuracy_epoch_3": float(accuracy.get(3, float("nan"))),
        "first_epoch_at_0.95": int(accuracy[accuracy >= 0.95].index.min())
        if (accuracy >= 0.95).any()
        else None,
        "nmi": report["categorical"]["nmi"],
        "ari": report["categorical"]["ari"],
        "generated_purity": report["generated"]["purity_hungarian"],
        "inception_score": report["generated"]["inception_score"],
        "frechet_distance": report["generated"]["frechet_distance"],
        "fd_floor": report["generated"]["frechet_distance_train_vs_test"],
        "fd_over_floor": report["generated"]["frechet_distance_over_floor"],
        **{key: roles[key] for key in roles},
        "train_minutes": float(epochs["epoch_seconds"].sum() / 60),
        "peak_rss_mb": float(epochs["peak_rss_mb"].max()),
    }


# Options that do not change what a run computes, left out when two tables' options are compared.
BOOKKEEPING = {"seed", "out", "data", "fresh", "progress", "keep_checkpoints", "strategy"}


def training_options(config, names=None):
    """The options of `names` (default: the config's) that change what a run computes; an option
    the run predates counts as the value that reproduces it."""
    predates = {**REMOVED_OPTIONS, **BEFORE_OPTION_EXISTED}
    names = config.keys() if names is None else names
    return {key: config.get(key, predates.get(key)) for key in names if key not in BOOKKEEPING}


def earlier_rows(path, config):
    """{seed: row} of an earlier table, which must have been made with the same options."""
    table = read_json(path, "earlier table")
    names = set(table["config"]) | set(config)
    theirs, ours = training_options(table["config"], names), training_options(config, names)
    changed = [f"{key} {theirs[key]!r}, here {ours[key]!r}" for key in sorted(theirs)
               if theirs[key] != ours[key]]  # fmt: skip
    if changed:
        raise UserError(
            f"{path} was made with other training options than these runs "
            f"({'; '.join(changed)}); combine only tables of the same options"
        )
    return {row["seed"]: row for row in table["runs"]}


def columns_of(rows):
    """The COLUMNS every row has (tables made before a column existed lack it)."""
    return {column: spec for column, spec in COLUMNS.items() if all(column in r for r in rows)}


def summary_rows(rows):
    summary = []
    for label in ("median", "worst", "best"):
        entry = {"seed": label}
        for column, (_, _, higher_better) in columns_of(rows).items():
            values = [row[column] for row in rows]
            if label == "median":
                entry[column] = statistics.median(values)
            else:
                pick_max = (label == "best") == higher_better
                entry[column] = max(values) if pick_max else min(values)
        summary.append(entry)
    return summary


def targets(summary):
    """{target: (value, met)} from the summary rows."""
    by_label = {entry["seed"]: entry for entry in summary}
    result = {}
    for name, (column, label, bound, at_least) in TARGETS.items():
        if column not in by_label[label]:
            continue  # a table made before its column existed
        value = by_label[label][column]
        met = value >= bound if at_least else value <= bound
        result[name] = {"value": value, "met": met, "column": column}
    return result


def markdown(table):
    rows, summary = table["runs"], table["summary"]
    columns = columns_of(rows)
    lines = [
        "| seed | " + " | ".join(label for label, _, _ in columns.values()) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for row in [*rows, *summary]:
        seed = row["seed"] if isinstance(row["seed"], int) else f"**{row['seed']}**"
        if isinstance(row["seed"], int):
            seed = (
                f"{seed} ({row['rotation_code']} rot., {row['style_code']} {row['style_measure']})"
            )
        cells = [fmt.format(row[column]) for column, (_, fmt, _) in columns.items()]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    if table.get("targets"):
        lines += ["", "| target | value | met |", "|---|---|---|"]
        for name, result in table["targets"].items():
            value = COLUMNS[result["column"]][1].format(result["value"])
            lines.append(f"| {name} | {value} | {'yes' if result['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def run(command):
    print("+ " + " ".join(command), flush=True)
    if subprocess.run(command).returncode != 0:
        raise UserError(f"command failed: {' '.join(command)}; rerun this script to resume")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs", default=os.path.join("runs", "seeds"), help="runs folder")
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    parser.add_argument("--data", default="", help="a data file or folder, as infogan.py --data")
    parser.add_argument("--table", default=os.path.join("figures", "multiseed"), help="stem")
    parser.add_argument("--skip-training", action="store_true", help="only evaluate and table")
    parser.add_argument("--no-targets", action="store_true", help="no targets row (not MNIST)")
    parser.add_argument("--readme", default="", help="also render the table into this file")
    parser.add_argument("--rows-from", default="", help="a table JSON for seeds not under --runs")
    parser.add_argument("training_options", nargs="*", help="after --: more infogan.py options")
    args = parser.parse_args(argv)
    data = ["--data", args.data] if args.data else []
    here = os.path.dirname(os.path.abspath(__file__))
    rows, kept = [], set()
    try:
        for seed in args.seeds:
            run_dir = os.path.join(args.runs, f"{args.dataset}_seed{seed}")
            if args.rows_from and args.skip_training and not os.path.isdir(run_dir):
                kept.add(seed)  # its row comes from the earlier table, checked below
                rows.append(None)
                continue
            if not args.skip_training:
                run([sys.executable, os.path.join(here, "infogan.py"), "--seed", str(seed),
                     "--dataset", args.dataset, "--out", run_dir, "--no-progress", *data,
                     *args.training_options])  # fmt: skip
            report = os.path.join(run_dir, "figures", "evaluation.json")
            model = os.path.join(run_dir, "model", "infogan_model_generator.keras")
            if not os.path.exists(report) or os.path.getmtime(report) < os.path.getmtime(model):
                run([sys.executable, os.path.join(here, "evaluate.py"), "--model-dir", run_dir,
                     *data])  # fmt: skip
            rows.append(row_for(seed, run_dir))
        trained = [seed for seed in args.seeds if seed not in kept]
        if not trained:
            raise UserError(f"no run folder of seeds {args.seeds} under {args.runs}")
        config = read_json(os.path.join(args.runs, f"{args.dataset}_seed{trained[0]}",
                                        "model", "config.json"), "run configuration")  # fmt: skip
        if kept:
            earlier = earlier_rows(args.rows_from, config)
            missing = [seed for seed in kept if seed not in earlier]
            if missing:
                raise UserError(f"seeds {missing}: no folder under {args.runs} and no row in "
                                f"{args.rows_from}")  # fmt: skip
            rows = [row or earlier[seed] for seed, row in zip(args.seeds, rows, strict=True)]
        summary = summary_rows(rows)
        table = {
            "runs": rows,
            "summary": summary,
            "targets": {} if args.no_targets else targets(summary),
            "command": "python multiseed.py " + " ".join(argv or sys.argv[1:]),
            "config": config,
        }
        write_json(table, args.table + ".json")
        write_text(markdown(table), args.table + ".md")
        if args.readme:
            render_into(args.readme, args.table + ".md", markdown(table))
    except UserError as error:
        sys.exit(f"error: {error}")
    print(markdown(table))
    print(f"wrote {args.table}.md and {args.table}.json")


if __name__ == "__main__":
    main()
