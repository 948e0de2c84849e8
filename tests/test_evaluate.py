"""The evaluation script on a tiny trained synthetic run: every file, numbers that recompute, determinism,
unseen labels reported, threshold tuning picked up by the Predictor."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from fashion_hier import evaluate, metrics
from fashion_hier.commands import evaluate as evaluate_command
from fashion_hier.jsonio import to_json_data
from fashion_hier.labels import LEVELS, LabelSpace
from fashion_hier.thresholds import load_thresholds

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("attributes_precision_recall.png", "category_confusion_matrix.png", "subcategory_f1.png", "samples.png")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run directory from ``train``: synthetic catalogue of 60 images at 32 px, 1 epoch, a small backbone."""
    from fashion_hier.config import TrainConfig
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.train import train

    root = tmp_path_factory.mktemp("evaluate")
    labels_csv = make_synthetic_catalog(root / "catalog", n=60, image_size=32, seed=0)
    config = TrainConfig.from_dict({
        "data": {"labels_csv": str(labels_csv), "image_dir": str(labels_csv.parent / "images"),
                 "image_size": [32, 32], "augment": False},
        "model": {"backbone": "mobilenetv2", "weights": None, "units": 16},
        "training": {"epochs": 1, "batch_size": 16, "jit_compile": False, "run_eagerly": True},
        "output_dir": str(root / "runs"),
        "name": "tiny",
    })
    return train(config), labels_csv


@pytest.fixture(scope="module")
def evaluated(trained_run):
    """The run evaluated once on its test split, report written beside it in ``eval``."""
    run_dir, _ = trained_run
    out_dir = run_dir / "eval"
    result = evaluate.evaluate_run(run_dir, out_dir=out_dir, batch_size=8, progress=False)
    return run_dir, out_dir, result


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def saved_predictions(out_dir):
    with np.load(out_dir / "predictions.npz") as saved:
        return {key: saved[key] for key in saved.files}


def test_evaluate_writes_every_report_file(evaluated):
    _, out_dir, result = evaluated
    for name in ("metrics.json", "metrics.md", "predictions.npz",
                 *(f"per_class_{level}.csv" for level in LEVELS)):
        assert (out_dir / name).is_file(), name
    assert read_json(out_dir / "metrics.json") == result
    for level in ("category", "subcategory", "attributes", "hierarchy"):
        assert level in result


def test_report_counts_every_test_row_and_the_ones_with_labels_unseen_in_training(evaluated):
    run_dir, out_dir, result = evaluated
    test_rows = pd.read_csv(run_dir / "splits" / "test.csv", dtype=str)
    label_space = LabelSpace.load(run_dir / "labels.json")  # built from the train split only
    unseen = ~test_rows["subCategory"].isin(label_space.categories) | ~test_rows["articleType"].isin(label_space.subcategories)
    assert result["data"]["rows_read"] == len(test_rows)
    assert result["unseen_labels"]["rows_dropped"] == int(unseen.sum())
    assert result["n_samples"] == int((~unseen).sum())
    np.testing.assert_array_equal(saved_predictions(out_dir)["image_path"], test_rows.loc[~unseen, "image_path"])


def test_metrics_json_matches_report_recomputed_from_saved_predictions(evaluated):
    _, out_dir, result = evaluated
    saved = saved_predictions(out_dir)
    y_true = {level: saved[f"{level}_true"] for level in LEVELS}
    y_score = {level: saved[f"{level}_score"] for level in LEVELS}
    recomputed = metrics.hierarchical_report(y_true, y_score, parents=saved["parents"], threshold=saved["thresholds"])
    recomputed = json.loads(json.dumps(to_json_data(recomputed)))
    for key in ("category", "subcategory", "attributes", "hierarchy"):
        assert result[key] == pytest.approx(recomputed[key], nan_ok=True), key
    # and two numbers straight from scikit-learn, independent of fashion_hier.metrics
    category_accuracy = accuracy_score(y_true["category"], y_score["category"].argmax(axis=1))
    assert result["category"]["accuracy"] == pytest.approx(category_accuracy)
    chosen = y_score["attributes"] >= saved["thresholds"]
    micro_p, micro_r, _, _ = precision_recall_fscore_support(y_true["attributes"], chosen, average="micro", zero_division=0)
    assert result["attributes"]["OP"] == pytest.approx(micro_p)
    assert result["attributes"]["OR"] == pytest.approx(micro_r)


def test_default_threshold_is_used_without_thresholds_file(evaluated):
    run_dir, out_dir, result = evaluated
    assert not (run_dir / "thresholds.json").exists()
    assert result["thresholds"]["source"] == "default 0.75"
    assert set(result["thresholds"]["attributes"].values()) == {0.75}
    np.testing.assert_array_equal(saved_predictions(out_dir)["thresholds"], 0.75)


def test_markdown_table_has_the_paper_rows_with_blanks_where_not_applicable(evaluated):
    _, out_dir, result = evaluated
    lines = (out_dir / "metrics.md").read_text(encoding="utf-8").splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["level", "accuracy", "OP", "OR", "OF1", "CF1", "P@k", "R@k", "F1@k", "AP"]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:5])}
    assert list(rows) == ["category", "subcategory", "attributes"]
    category = dict(zip(header, rows["category"]))
    assert [category[c] for c in ("P@k", "R@k", "F1@k", "AP")] == ["", "", "", ""]
    for column in ("accuracy", "OP", "CF1"):
        assert float(category[column]) == pytest.approx(100 * result["category"][column], abs=0.006)
    attributes = dict(zip(header, rows["attributes"]))
    assert attributes["accuracy"] == ""  # a set of tags has no single-label accuracy
    assert float(attributes["P@k"]) == pytest.approx(100 * result["attributes"]["P@k"], abs=0.006)
    if result["attributes"]["mAP"] is not None:
        assert float(attributes["AP"]) == pytest.approx(100 * result["attributes"]["mAP"], abs=0.006)


def test_per_class_csvs_match_scikit_learn(evaluated):
    _, out_dir, _ = evaluated
    saved = saved_predictions(out_dir)
    table = pd.read_csv(out_dir / "per_class_category.csv")
    num_classes = saved["category_score"].shape[1]
    assert len(table) == num_classes
    precision, recall, f1, support = precision_recall_fscore_support(
        saved["category_true"], saved["category_score"].argmax(axis=1), labels=np.arange(num_classes), zero_division=0)
    np.testing.assert_allclose(table["support"], support)
    np.testing.assert_allclose(table["recall"].fillna(0), recall, atol=1e-6)
    attributes = pd.read_csv(out_dir / "per_class_attributes.csv")
    assert len(attributes) == saved["attributes_score"].shape[1]
    np.testing.assert_allclose(attributes["support"], saved["attributes_true"].sum(axis=0))


def test_plots_are_valid_pngs(evaluated):
    _, out_dir, _ = evaluated
    for name in PLOTS:
        path = out_dir / "plots" / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        with Image.open(path) as image:
            image.load()
            pixels = np.asarray(image.convert("RGB"))
        assert min(pixels.shape[:2]) >= 200, name
        assert pixels.std() > 0, f"{name} is blank"


def test_evaluating_twice_gives_identical_metrics(evaluated):
    run_dir, out_dir, _ = evaluated
    again = run_dir / "eval_again"
    evaluate.evaluate_run(run_dir, out_dir=again, batch_size=5, progress=False)
    assert (again / "metrics.json").read_bytes() == (out_dir / "metrics.json").read_bytes()
    first, second = saved_predictions(out_dir), saved_predictions(again)
    for level in LEVELS:
        np.testing.assert_allclose(second[f"{level}_score"], first[f"{level}_score"], rtol=0, atol=1e-6)


def test_labels_never_seen_in_training_are_reported_not_fatal(evaluated, trained_run, tmp_path, capsys):
    run_dir, _, _ = evaluated
    _, labels_csv = trained_run
    train_rows = pd.read_csv(run_dir / "splits" / "train.csv", dtype=str)  # every label here is known
    catalog = pd.read_csv(labels_csv, dtype=str)
    catalog = catalog[catalog["id"].isin(train_rows["id"][:8])].reset_index(drop=True)
    catalog.loc[0, "articleType"] = "Hoverboards"   # unseen subcategory: row left out
    catalog.loc[1, "season"] = "Monsoon"            # unseen attribute value: ignored, row kept
    new_csv = tmp_path / "new_labels.csv"
    catalog.to_csv(new_csv, index=False)

    code = evaluate_command.main(["--run", str(run_dir), "--labels", str(new_csv), "--images", str(labels_csv.parent / "images"),
                          "--out", str(tmp_path / "report"), "--no-progress"])
    assert code == 0
    result = read_json(tmp_path / "report" / "metrics.json")
    assert result["unseen_labels"]["labels"]["subcategory"] == {"Hoverboards": 1}
    assert result["unseen_labels"]["labels"]["attributes"] == {"Monsoon": 1}
    assert result["unseen_labels"]["counts"] == {"category": 0, "subcategory": 1, "attributes": 1}
    assert result["unseen_labels"]["rows_dropped"] == 1
    assert result["n_samples"] == len(catalog) - 1
    printed = capsys.readouterr().out
    assert "Hoverboards" in printed and "Monsoon" in printed


@pytest.mark.slow
def test_tuned_thresholds_are_saved_and_picked_up_by_the_predictor(trained_run, tmp_path):
    from fashion_hier.predict import Predictor

    run_dir = shutil.copytree(trained_run[0], tmp_path / "run", ignore=shutil.ignore_patterns("eval*"))
    code = evaluate_command.main(["--run", str(run_dir), "--tune-thresholds", "--floor", "0.2", "--cap", "0.8", "--no-progress"])
    assert code == 0
    saved = read_json(run_dir / "thresholds.json")
    assert saved["split"] == "validation" and saved["floor"] == 0.2 and saved["cap"] == 0.8
    predictor = Predictor.load(run_dir)
    assert list(saved["attributes"]) == predictor.label_space.attributes
    thresholds = load_thresholds(run_dir / "thresholds.json", predictor.label_space.attributes)
    assert np.all((thresholds >= 0.2) & (thresholds <= 0.8))
    np.testing.assert_allclose(predictor.thresholds, thresholds)
    import keras

    alone = keras.saving.load_model(run_dir / "model.keras", compile=False)  # the model file carries them too
    np.testing.assert_allclose(alone.thresholds, thresholds)

    # the thresholds are the ones tuning gives on the validation split's scores
    validation = evaluate.prepare(evaluate.read_split(run_dir, "validation"), predictor.label_space, "validation")
    scores = predictor.predict_scores(validation.frame["image_path"].tolist(), batch_size=8)
    expected = metrics.tune_thresholds(validation.targets["attributes"], scores["attributes"], floor=0.2, cap=0.8)
    np.testing.assert_allclose(thresholds, expected, atol=1e-6)

    # and the test metrics were computed with them
    result = read_json(run_dir / "metrics.json")
    assert result["thresholds"]["source"] == str(run_dir / "thresholds.json")
    assert list(result["thresholds"]["attributes"].values()) == pytest.approx(list(thresholds))


def test_bad_arguments_get_clear_errors(evaluated, tmp_path):
    run_dir, _, _ = evaluated
    with pytest.raises(FileNotFoundError, match="run directory .*missing.* does not exist"):
        evaluate.evaluate_run(tmp_path / "missing")
    with pytest.raises(ValueError, match="labels_csv and image_dir together"):
        evaluate.evaluate_run(run_dir, labels_csv=tmp_path / "x.csv")
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate.read_split(run_dir, "holdout")
    empty_run = tmp_path / "empty_run"
    (empty_run / "splits").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"splits/validation.csv does not exist"):
        evaluate.read_split(empty_run, "validation")
    with pytest.raises(ValueError, match="0 <= floor <= cap <= 1, got floor=0.9, cap=0.2"):
        evaluate.evaluate_run(run_dir, tune_thresholds=True, floor=0.9, cap=0.2)
    labelled = str(run_dir / "splits" / "test.csv")  # an existing CSV: only the combinations are wrong
    for argv in (["--floor", "0.1"],                                   # bounds without --tune-thresholds
                 ["--labels", labelled],                               # labels without images
                 ["--labels", labelled, "--images", ".", "--split", "validation"]):
        with pytest.raises(SystemExit):
            evaluate_command.main(["--run", str(run_dir), *argv])


def test_a_catalogue_with_no_known_row_is_refused_with_the_unseen_labels(evaluated):
    run_dir, _, _ = evaluated
    label_space = LabelSpace.load(run_dir / "labels.json")
    frame = pd.DataFrame({"id": ["1", "2"], "subCategory": ["Jewellery", "Jewellery"], "articleType": ["Rings", "Rings"],
                          "season": ["Summer", None], "usage": [None, None], "image_path": ["a.jpg", "b.jpg"]})
    data = evaluate.prepare(frame, label_space, "new.csv")
    assert data.unseen_labels["category"] == {"Jewellery": 2} and data.rows_dropped == 2
    with pytest.raises(ValueError, match=r"new.csv: none of its 2 rows .*Jewellery.*nothing to evaluate"):
        evaluate.check_not_empty(data)


def test_cli_reports_a_missing_run_in_one_line(tmp_path, capsys):
    from fashion_hier.cli import main as cli_main

    assert cli_main(["evaluate", "--run", str(tmp_path / "missing"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fashion-hier evaluate: ") and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_unreadable_test_images_are_skipped_counted_and_listed(trained_run, tmp_path):
    """A broken image in the split is left out of the metrics, counted in metrics.json and listed in a CSV."""
    from fashion_hier.rundir import RunDir

    run = shutil.copytree(trained_run[0], tmp_path / "run", ignore=shutil.ignore_patterns("eval*"))
    test_csv = RunDir(run).split("test")
    frame = pd.read_csv(test_csv, dtype=str)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff truncated")
    known = LabelSpace.load(RunDir(run).labels).known_rows(frame)
    frame.loc[np.flatnonzero(known)[0], "image_path"] = str(broken)  # a row that would be scored
    frame.to_csv(test_csv, index=False)
    out = tmp_path / "report"
    result = evaluate.evaluate_run(run, split="test", out_dir=out, batch_size=8, progress=False)
    assert result["n_samples"] == known.sum() - 1
    assert result["unreadable_images"]["count"] == 1
    listed = pd.read_csv(RunDir(out).unreadable_images)
    assert listed["image_path"].tolist() == [str(broken)]
