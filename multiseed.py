"""Train and evaluate several seeds with the same options, and tabulate them.

    python multiseed.py --data ~/mnist.npz                    # seeds 0 1 2, default options
    python multiseed.py --seeds 3 4 --runs runs/more -- --epochs 20  # after --: infogan.py options

Each seed trains in its own folder <runs>/seed_<N> with `python infogan.py --seed N --out ...`,
which resumes an interrupted run and skips a finished one, so rerunning this command continues
where it stopped and never overwrites a finished run. Each run is then evaluated with
`python evaluate.py` into its figures/ folder. The table (a row per seed, then median, worst and
best) goes to --table as Markdown and JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import pandas as pd

from utils import UserError, atomic_path

# column: (where in evaluation.json, True if higher is better)
COLUMNS = {
    "test_accuracy": (("categorical", "hungarian_accuracy"), True),
    "purity": (("categorical", "purity"), True),
    "nmi": (("categorical", "nmi"), True),
    "ari": (("categorical", "ari"), True),
    "generated_purity": (("generated", "purity_hungarian"), True),
    "inception_score": (("generated", "inception_score"), True),
    "frechet_distance": (("generated", "frechet_distance"), False),
}


def continuous_summary(report):
    """The code that follows slant best, and how well the other follows width or ink."""
    table = report["continuous_generated"]
    slant_code = max(table, key=lambda code: abs(table[code]["slant"]))
    other = next(code for code in table if code != slant_code)
    shape = max(("width", "ink"), key=lambda name: abs(table[other][name]))
    return {
        "slant_code": slant_code,
        "slant_rho": table[slant_code]["slant"],
        "other_code": other,
        "other_measure": shape,
        "other_rho": table[other][shape],
    }


def row_for(seed, run_dir):
    with open(os.path.join(run_dir, "figures", "evaluation.json")) as handle:
        report = json.load(handle)
    epochs = pd.read_csv(os.path.join(run_dir, "figures", "losses_per_epoch.csv"))
    row = {"seed": seed, "epochs": int(epochs["epoch"].max())}
    row["train_minutes"] = float(epochs["seconds"].sum() / 60)
    for column, ((section, key), _) in COLUMNS.items():
        row[column] = report[section][key]
    row["fd_train_vs_test"] = report["generated"]["frechet_distance_train_vs_test"]
    row.update(continuous_summary(report))
    return row


def summary_rows(rows):
    numeric = [*COLUMNS, "abs_slant_rho", "abs_other_rho"]
    for row in rows:
        row["abs_slant_rho"], row["abs_other_rho"] = abs(row["slant_rho"]), abs(row["other_rho"])
    higher_better = {c: COLUMNS[c][1] if c in COLUMNS else True for c in numeric}
    summary = []
    for label in ("median", "worst", "best"):
        entry = {"seed": label}
        for column in numeric:
            values = [row[column] for row in rows]
            if label == "median":
                entry[column] = statistics.median(values)
            else:
                pick_max = (label == "best") == higher_better[column]
                entry[column] = max(values) if pick_max else min(values)
        summary.append(entry)
    return summary


def markdown(rows, summary):
    header = (
        "| seed | test acc | purity | NMI | ARI | gen. purity | IS | FD (floor) "
        "| slant code, rho | other code, measure, rho | minutes |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['test_accuracy']:.4f} | {r['purity']:.4f} | {r['nmi']:.4f} "
            f"| {r['ari']:.4f} | {r['generated_purity']:.4f} | {r['inception_score']:.2f} "
            f"| {r['frechet_distance']:.2f} ({r['fd_train_vs_test']:.2f}) "
            f"| {r['slant_code']} {r['slant_rho']:+.3f} "
            f"| {r['other_code']} {r['other_measure']} {r['other_rho']:+.3f} "
            f"| {r['train_minutes']:.1f} |"
        )
    for s in summary:
        lines.append(
            f"| **{s['seed']}** | {s['test_accuracy']:.4f} | {s['purity']:.4f} | {s['nmi']:.4f} "
            f"| {s['ari']:.4f} | {s['generated_purity']:.4f} | {s['inception_score']:.2f} "
            f"| {s['frechet_distance']:.2f} | abs {s['abs_slant_rho']:.3f} "
            f"| abs {s['abs_other_rho']:.3f} | |"
        )
    return "\n".join(lines) + "\n"


def run(command):
    print("+ " + " ".join(command), flush=True)
    if subprocess.run(command).returncode != 0:
        raise UserError(f"command failed: {' '.join(command)}; rerun this script to resume")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", default=os.path.join("runs", "seeds"), help="runs folder")
    parser.add_argument("--data", default="", help="Keras-layout mnist.npz (as infogan.py)")
    parser.add_argument("--table", default=os.path.join("figures", "multiseed"), help="stem")
    parser.add_argument("--skip-training", action="store_true", help="only evaluate and table")
    parser.add_argument("training_options", nargs="*", help="after --: more infogan.py options")
    args = parser.parse_args(argv)
    data = ["--data", args.data] if args.data else []
    here = os.path.dirname(os.path.abspath(__file__))
    rows = []
    try:
        for seed in args.seeds:
            run_dir = os.path.join(args.runs, f"seed_{seed}")
            if not args.skip_training:
                run([sys.executable, os.path.join(here, "infogan.py"), "--seed", str(seed),
                     "--out", run_dir, "--no-progress", *data, *args.training_options])  # fmt: skip
            report = os.path.join(run_dir, "figures", "evaluation.json")
            model = os.path.join(run_dir, "model", "infogan_model_generator.keras")
            if not os.path.exists(report) or os.path.getmtime(report) < os.path.getmtime(model):
                run([sys.executable, os.path.join(here, "evaluate.py"), "--model-dir",
                     os.path.join(run_dir, "model"), "--out", os.path.join(run_dir, "figures"),
                     *data])  # fmt: skip
            rows.append(row_for(seed, run_dir))
    except UserError as error:
        sys.exit(f"error: {error}")
    summary = summary_rows(rows)
    with atomic_path(args.table + ".json") as temporary, open(temporary, "w") as handle:
        json.dump({"runs": rows, "summary": summary}, handle, indent=2)
    with atomic_path(args.table + ".md") as temporary, open(temporary, "w") as handle:
        handle.write(markdown(rows, summary))
    print(markdown(rows, summary))
    print(f"wrote {args.table}.md and {args.table}.json")


if __name__ == "__main__":
    main()
