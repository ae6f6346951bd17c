import json
import os

import numpy as np
import pytest

import evaluate
import multiseed
import utils
from evaluate import cluster_accuracy


def test_permuted_labelling_scores_perfectly():
    labels = np.repeat(np.arange(10), 30)
    permutation = np.random.default_rng(0).permutation(10)
    clusters = permutation[labels]
    accuracy, mapping = cluster_accuracy(labels, clusters)
    assert accuracy == 1.0
    assert all(mapping[permutation[d]] == d for d in range(10))
    assert evaluate.purity(labels, clusters) == 1.0
    assert evaluate.normalized_mutual_information(labels, clusters) == pytest.approx(1.0)
    assert evaluate.adjusted_rand_index(labels, clusters) == pytest.approx(1.0)


def test_hungarian_is_one_to_one_where_purity_is_not():
    labels = np.array([0, 0, 0, 1, 1, 1])
    clusters = np.array([0, 0, 0, 1, 1, 2])  # digit 1 split over two clusters
    assert cluster_accuracy(labels, clusters)[0] == pytest.approx(5 / 6)
    assert evaluate.purity(labels, clusters) == 1.0
    merged = np.zeros(6, int)  # everything in one cluster
    assert cluster_accuracy(labels, merged)[0] == pytest.approx(0.5)
    assert evaluate.normalized_mutual_information(labels, merged) == pytest.approx(0.0)


def test_random_clusters_score_near_chance():
    rng = np.random.default_rng(1)
    labels, clusters = rng.integers(0, 10, 20000), rng.integers(0, 10, 20000)
    assert abs(evaluate.adjusted_rand_index(labels, clusters)) < 0.01
    assert evaluate.normalized_mutual_information(labels, clusters) < 0.01


def test_inception_score_bounds():
    assert evaluate.inception_score(np.full((100, 10), 0.1)) == pytest.approx(1.0)
    confident = np.eye(10)[np.arange(100) % 10]  # sure and spread evenly over 10 classes
    assert evaluate.inception_score(confident) == pytest.approx(10.0, rel=1e-6)


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    features = np.random.default_rng(2).normal(size=(2000, 16))
    assert evaluate.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    shifted = features + 1.0
    assert evaluate.frechet_distance(features, shifted) == pytest.approx(16.0, rel=1e-6)


def test_evaluate_end_to_end_on_a_tiny_model(trained_run, tmp_path, monkeypatch):
    out = tmp_path / "report"
    classifiers = tmp_path / "classifiers"
    argv = ["--model-dir", trained_run, "--out", str(out), "--classifier-epochs", "1",
            "--per-code", "20", "--sweep-rows", "3"]  # fmt: skip
    monkeypatch.setattr(evaluate, "CLASSIFIERS", str(classifiers))
    evaluate.main(argv)
    report = json.load(open(out / "evaluation.json"))
    # A model outside the working folder keeps its absolute path; inside it, a relative one.
    assert report["model_dir"] == os.path.join(os.path.abspath(trained_run), "model")
    with monkeypatch.context() as patch:
        patch.chdir(trained_run)
        assert evaluate.shown_path(os.path.join(os.path.abspath(trained_run), "model")) == "model"

        def on_another_drive(path):  # what Windows's relpath does across drives
            raise ValueError(f"path is on mount 'D:', start on mount 'C:': {path}")

        patch.setattr(os.path, "relpath", on_another_drive)
        assert evaluate.shown_path("D:\\model") == "D:\\model"  # as given, no traceback
    categorical, generated = report["categorical"], report["generated"]
    assert report["dataset"] == "mnist"  # from the run's config.json
    assert categorical["test_images"] == 200
    assert 0 <= categorical["hungarian_accuracy"] <= 1
    assert categorical["purity"] >= categorical["hungarian_accuracy"]
    assert np.array(categorical["confusion"]).sum() == 200
    assert sorted(categorical["code_to_class"].values()) == list(range(10))
    assert generated["images"] == 200 and 1 <= generated["inception_score"] <= 10
    assert generated["frechet_distance"] >= 0 and generated["frechet_distance_train_vs_test"] > 0
    sweeps = report["sweeps"]
    assert sweeps["rows"] == 30 and len(sweeps["values"]) == 9
    for code in ("c1", "c2"):
        assert set(sweeps[code]) == {*evaluate.MEASURES, "sweep_purity"}
        for measure in evaluate.MEASURES:
            assert 0 <= sweeps[code][measure]["clean_rows"] <= 1
            assert sweeps[code][measure]["median_abs_change"] >= 0
    roles = report["code_roles"]
    slant_changes = {sweeps[code]["slant"]["median_abs_change"] for code in ("c1", "c2")}
    assert {roles["rotation_turn_degrees"], roles["style_code_turn_degrees"]} == slant_changes
    assert {roles["rotation_code"], roles["style_code"]} == {"c1", "c2"}
    assert roles["style_measure"] in ("width", "thickness")
    text = (out / "evaluation.md").read_text()
    assert text.count("|") > 20 and evaluate.ACCURACY_REFERENCE["mnist"] in text
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    assert [p.name for p in classifiers.iterdir()] == [
        os.path.basename(report["classifier"]["path"])
    ]  # trained once for this data set, then reused
    evaluate.main([*argv, "--classifier", report["classifier"]["path"]])


def test_code_roles_name_the_rotation_code_and_the_other_style():
    def code(slant, width, thickness, turn):
        return {"slant": {"clean_rows": slant, "median_abs_change": turn},
                "width": {"clean_rows": width}, "thickness": {"clean_rows": thickness},
                "sweep_purity": 0.99}  # fmt: skip

    roles = evaluate.code_roles({"c1": code(0.1, 0.3, 0.92, 4.0), "c2": code(0.97, 0.2, 0.1, 31.0)})
    assert (roles["rotation_code"], roles["rotation_clean_rows"]) == ("c2", 0.97)
    assert (roles["style_code"], roles["style_measure"], roles["style_clean_rows"]) == (
        "c1", "thickness", 0.92)  # fmt: skip
    assert roles["style_code_slant_clean_rows"] == 0.1
    assert (roles["rotation_turn_degrees"], roles["style_code_turn_degrees"]) == (31.0, 4.0)


def test_classifiers_are_cached_per_data_set_content():
    from conftest import FASHION_SMALL, MNIST_SMALL

    from utils import read_data

    mnist, fashion = read_data(MNIST_SMALL), read_data(FASHION_SMALL)
    a = evaluate.classifier_path("mnist", mnist[0], mnist[1])
    assert a == evaluate.classifier_path("mnist", mnist[0].copy(), mnist[1].copy())
    assert a != evaluate.classifier_path("mnist", mnist[0][:-1], mnist[1][:-1])
    assert "fashion_mnist_" in evaluate.classifier_path("fashion_mnist", fashion[0], fashion[1])


def test_evaluate_without_models_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no such generator file"):
        evaluate.main(["--model-dir", str(tmp_path), "--out", str(tmp_path / "out")])


def fake_row(seed, accuracy, fd_ratio, rotation):
    row = {column: 0.995 for column in multiseed.COLUMNS}
    row.update(seed=seed, test_accuracy=accuracy, fd_over_floor=fd_ratio,
               rotation_clean_rows=rotation, style_code_slant_clean_rows=0.1,
               rotation_turn_degrees=30.0, style_code_turn_degrees=5.0,
               rotation_code="c2", style_code="c1", style_measure="thickness")  # fmt: skip
    return row


def test_multiseed_summary_picks_median_worst_best_by_direction_and_judges_targets():
    rows = [
        fake_row(0, 0.985, 3.0, 0.97),
        fake_row(1, 0.96, 2.0, 0.99),
        fake_row(2, 0.99, 2.4, 0.9),
    ]
    median, worst, best = multiseed.summary_rows(rows)
    assert (median["test_accuracy"], worst["test_accuracy"], best["test_accuracy"]) == (
        0.985, 0.96, 0.99)  # fmt: skip
    assert (worst["fd_over_floor"], best["fd_over_floor"]) == (3.0, 2.0)  # lower is better
    assert worst["style_code_slant_clean_rows"] == 0.1
    targets = multiseed.targets([median, worst, best])
    assert not targets["test accuracy >= 0.97 in every seed"]["met"]  # seed 1: 0.96
    assert targets["test accuracy median >= 0.98"]["met"]
    assert targets["FD at most 2.5x the train-vs-test floor (median)"]["met"]  # median 2.4
    assert not targets["a rotation code with >= 95 % clean rows in every seed"]["met"]
    second_rotation = (
        "the other code not a second rotation code (turns the digit < 10°) in every seed"
    )
    assert targets[second_rotation]["met"]  # 5 degrees in every seed
    rows[2]["style_code_turn_degrees"] = 20.0  # seed 2's other code turns its digits too
    assert not multiseed.targets(multiseed.summary_rows(rows))[second_rotation]["met"]


def test_a_table_made_before_a_column_existed_renders_without_it_and_its_target():
    rows = [fake_row(0, 0.985, 3.0, 0.97), fake_row(1, 0.96, 2.0, 0.99)]
    for row in rows:
        del row["style_code_turn_degrees"]
    summary = multiseed.summary_rows(rows)
    targets = multiseed.targets(summary)
    assert "other code: turn" not in multiseed.markdown(
        {"runs": rows, "summary": summary, "targets": targets}
    )
    assert "rotation code: turn" in multiseed.markdown({"runs": rows, "summary": summary})
    assert not any("second rotation" in name for name in targets)
    assert "test accuracy >= 0.97 in every seed" in targets


def test_multiseed_renders_its_table_between_the_readme_markers(tmp_path):
    rows = [fake_row(0, 0.985, 3.0, 0.97), fake_row(1, 0.96, 2.0, 0.99)]
    summary = multiseed.summary_rows(rows)
    table = {"runs": rows, "summary": summary, "targets": multiseed.targets(summary)}
    text = multiseed.markdown(table)
    assert "| 1 (c2 rot., c1 thickness) | 0.9600 |" in text and "| **worst** | 0.9600 |" in text
    assert "| test accuracy >= 0.97 in every seed | 0.9600 | **no** |" in text
    start, end = utils.markers("figures/t.md")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{start}\nold table\n{end}\noutro\n")
    utils.render_into(str(readme), "figures/t.md", text)
    assert readme.read_text() == f"intro\n{start}\n{text}{end}\noutro\n"
    with pytest.raises(utils.UserError, match="no <!-- table figures/u.md -->"):
        utils.render_into(str(readme), "figures/u.md", text)


def fake_run(run_dir, seed, accuracy, config):
    """A run folder as multiseed.py reads it: config, generator file, evaluation, epoch CSV."""
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "figures").mkdir()
    (run_dir / "model" / "infogan_model_generator.keras").write_text("")
    utils.write_json({**config, "seed": seed}, str(run_dir / "model" / "config.json"))
    roles = {key: fake_row(seed, accuracy, 3.0, 0.97)[key] for key in (
        "rotation_code", "rotation_clean_rows", "style_code", "style_measure",
        "style_clean_rows", "style_code_slant_clean_rows", "sweep_purity",
        "rotation_turn_degrees", "style_code_turn_degrees")}  # fmt: skip
    report = {
        "categorical": {"hungarian_accuracy": accuracy, "nmi": 0.95, "ari": 0.9},
        "generated": {"purity_hungarian": 0.99, "inception_score": 9.5, "frechet_distance": 4.0,
                      "frechet_distance_train_vs_test": 1.3, "frechet_distance_over_floor": 3.1},
        "code_roles": roles,
    }  # fmt: skip
    utils.write_json(report, str(run_dir / "figures" / "evaluation.json"))
    (run_dir / "figures" / "losses_per_epoch.csv").write_text(
        "epoch,test_accuracy,epoch_seconds,peak_rss_mb\n3,0.95,60,1500\n15,0.98,60,1600\n"
    )


def test_multiseed_takes_missing_seeds_from_an_earlier_table_of_the_same_options(tmp_path):
    config = {"lambda_cont": 1.0, "epochs": 15, "out": "runs/a", "data": "/somewhere/mnist.npz"}
    # The runs know an option the earlier table predates, at the value that reproduces it.
    run_config = {**config, "out": "elsewhere", "augment_epochs": 0}
    fake_run(tmp_path / "runs" / "mnist_seed3", 3, 0.97, run_config)
    run_config_file = tmp_path / "runs" / "mnist_seed3" / "model" / "config.json"
    earlier = {"runs": [fake_row(0, 0.985, 3.0, 0.97)], "config": {**config, "seed": 0}}
    utils.write_json(earlier, str(tmp_path / "earlier.json"))
    stem = str(tmp_path / "table")
    common = ["--skip-training", "--runs", str(tmp_path / "runs"), "--table", stem]
    multiseed.main(["--seeds", "0", "3", "--rows-from", str(tmp_path / "earlier.json"), *common])
    table = utils.read_json(stem + ".json", "table")
    assert [row["seed"] for row in table["runs"]] == [0, 3]
    assert [row["test_accuracy"] for row in table["runs"]] == [0.985, 0.97]
    with pytest.raises(SystemExit, match=r"seeds \[1\]: no folder"):
        multiseed.main(["--seeds", "1", "3", "--rows-from", str(tmp_path / "earlier.json"),
                        *common])  # fmt: skip
    run_config["augment_epochs"] = 5  # not so at another value
    utils.write_json({**run_config, "seed": 3}, str(run_config_file))
    with pytest.raises(SystemExit, match=r"these runs \(augment_epochs 0, here 5\)"):
        multiseed.main(["--seeds", "0", "3", "--rows-from", str(tmp_path / "earlier.json"),
                        *common])  # fmt: skip
    run_config["augment_epochs"] = 0
    utils.write_json({**run_config, "seed": 3}, str(run_config_file))
    earlier["config"]["lambda_cont"] = 2.0  # another recipe's table does not mix in
    utils.write_json(earlier, str(tmp_path / "earlier.json"))
    with pytest.raises(SystemExit, match="other training options"):
        multiseed.main(["--seeds", "0", "3", "--rows-from", str(tmp_path / "earlier.json"),
                        *common])  # fmt: skip
