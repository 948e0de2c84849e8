"""Export with attribute columns: the SavedModel answers each group as the decoded table does; TFLite's
attribute scores slice into groups as export_tflite documents; predict's CSV has one column per group."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

tf = pytest.importorskip("tensorflow")

from fashion_hier.decoding import SCORE_SUFFIX, category_scores, decode_scores, prediction_columns  # noqa: E402
from fashion_hier.export import (FLAT_OUTPUTS, GROUP_SCORES_SUFFIX, GROUP_VALUES_SUFFIX, LEVEL_OUTPUTS,  # noqa: E402
                                 export_savedmodel, export_tflite, serving_outputs, tflite_scores)
from fashion_hier.labels import LabelSpace  # noqa: E402
from fashion_hier.predict import Predictor  # noqa: E402
from tiny_run import train_tiny_run, with_group_gaps  # noqa: E402

pytestmark = pytest.mark.slow  # SavedModel/TFLite conversions of a trained run: CI runs them with -m slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("export_groups_run"), groups=True)


@pytest.fixture(scope="module")
def paths(run_dir):
    return sorted(pd.read_csv(run_dir / "splits" / "test.csv")["image_path"].astype(str))[:8]


@pytest.fixture(scope="module")
def classifier(run_dir, paths):
    return with_group_gaps(run_dir, paths)


@pytest.fixture(scope="module")
def served(classifier, paths, tmp_path_factory):
    exported = export_savedmodel(Predictor(classifier), tmp_path_factory.mktemp("export_groups") / "savedmodel")
    serving = tf.saved_model.load(str(exported)).signatures["serving_default"]  # plain TensorFlow, no fashion_hier
    answer = serving(image_bytes=tf.constant([open(path, "rb").read() for path in paths]))
    return {name: _plain(value.numpy()) for name, value in answer.items()}


def _plain(array: np.ndarray) -> np.ndarray:
    return np.vectorize(bytes.decode, otypes=[object])(array) if array.dtype == object else array


def test_grouped_savedmodel_answers_every_group_like_predict_catalog(classifier, paths, served):
    space = classifier.label_space
    expected = classifier.predict_catalog(paths, consistent=True)

    assert set(served) == set(serving_outputs(space))
    assert served["category"].tolist() == expected["category"].tolist()
    assert served["subcategory"].tolist() == expected["subcategory"].tolist()
    np.testing.assert_allclose(served["attribute_scores"], classifier.predict_scores(paths)["attributes"], atol=1e-5)
    for group in space.groups:
        answer, score = served[group.name], served[group.name + SCORE_SUFFIX]
        assert answer.tolist() == expected[group.name].fillna("").tolist(), group.name
        if group.kind == "single":
            np.testing.assert_allclose(score, expected[group.name + SCORE_SUFFIX].astype(float), rtol=1e-5, atol=1e-5)
        else:
            for got, want in zip(score, expected[group.name + SCORE_SUFFIX].fillna("")):
                np.testing.assert_allclose([float(v) for v in got.split("|") if v],
                                           [float(v) for v in want.split("|") if v], atol=1e-4 + 1e-5)
            assert served[group.name + GROUP_VALUES_SUFFIX].tolist() == [list(group.values)] * len(paths)


def test_grouped_savedmodel_covers_answers_left_empty_and_multi_choices(classifier, served):
    """The gaps the fixture arranges: each kind answers some rows and leaves others empty (NaN scores)."""
    groups = classifier.label_space.groups
    for kind, suffix in (("single", SCORE_SUFFIX), ("multi", GROUP_SCORES_SUFFIX)):
        not_applicable = np.concatenate([np.isnan(served[g.name + suffix]).reshape(len(served[g.name]), -1).all(axis=1)
                                         for g in groups if g.kind == kind])
        assert not_applicable.any() and not not_applicable.all(), kind
    for group in groups:
        if group.kind == "single":
            assert np.isnan(served[group.name + SCORE_SUFFIX]).tolist() == (served[group.name] == "").tolist()
        else:
            missing = np.isnan(served[group.name + GROUP_SCORES_SUFFIX])
            assert missing.any(axis=1).tolist() == missing.all(axis=1).tolist()  # a whole row, or none of it
            assert (served[group.name][missing.all(axis=1)] == "").all()
            assert (served[group.name + SCORE_SUFFIX][missing.all(axis=1)] == "").all()
    picked = [v for g in groups if g.kind == "multi" for v in served[g.name] if "|" in v]
    assert picked, "no row picks two values of a multi group: the join is not exercised"


def test_grouped_savedmodel_equals_decoding_its_own_scores_exactly(classifier, served):
    """Same scores in, same strings out: the graph's decoding is decode_scores, digit for digit."""
    scores = {level: served[f"{level}_scores"] for level in ("category", "subcategory")}
    scores["attributes"] = served["attribute_scores"]
    decoded = decode_scores(scores, classifier.label_space, classifier.thresholds, {}, consistent=True)
    for group in classifier.label_space.groups:
        assert served[group.name].tolist() == decoded[group.name].fillna("").tolist()
        score = served[group.name + SCORE_SUFFIX]
        if group.kind == "single":
            np.testing.assert_array_equal(score, decoded[group.name + SCORE_SUFFIX].astype(np.float32))
        else:
            assert score.tolist() == decoded[group.name + SCORE_SUFFIX].fillna("").tolist()
            block = served[group.name + GROUP_SCORES_SUFFIX]
            applies = ~np.isnan(block).all(axis=1)
            category = [classifier.label_space.categories.index(name) for name in served["category"]]
            limited = category_scores(served["attribute_scores"], np.array(category), classifier.label_space)
            np.testing.assert_array_equal(block[applies], limited[applies][:, group.slice])


def test_serving_outputs_name_the_flat_outputs_and_refuse_clashing_groups(run_dir):
    space = Predictor.load(run_dir).label_space
    assert serving_outputs(space) == (*LEVEL_OUTPUTS, "gender", "gender_score", "base colour", "base colour_score",
                                      "tags", "tags_score", "tags_scores", "tags_values",
                                      "pattern", "pattern_score", "pattern_scores", "pattern_values")
    flat = LabelSpace(space.categories, space.subcategories, ["Red", "Blue"], space.parents)
    assert serving_outputs(flat) == FLAT_OUTPUTS
    for clash in ("tags_scores", "category_scores"):  # a multi group's own output; a fixed output
        data = space.to_dict()
        data["groups"][0]["name"] = data["columns"]["groups"][0]["name"] = clash
        with pytest.raises(ValueError, match=f"'{clash}'.*rename a group"):
            serving_outputs(LabelSpace.from_dict(data))


def test_tflite_attribute_scores_slice_into_groups_as_labels_json_lists_them(classifier, paths, tmp_path):
    from fashion_hier.data import load_images

    images = load_images(paths, classifier.image_size)
    scores = tflite_scores(export_tflite(Predictor(classifier), tmp_path / "m.tflite", quantization="none"), images)
    classifier.label_space.save(tmp_path / "labels.json")
    groups = json.loads((tmp_path / "labels.json").read_text())["groups"]  # what a TFLite user has beside the file
    starts = np.cumsum([0] + [len(g["values"]) for g in groups])
    expected = classifier.predict_scores(images)["attributes"]
    for group, start, stop in zip(groups, starts, starts[1:]):
        np.testing.assert_allclose(scores["attributes"][:, start:stop], expected[:, classifier.label_space.group(
            group["name"]).slice], atol=1e-5)
        if group["kind"] == "single":
            np.testing.assert_allclose(scores["attributes"][:, start:stop].sum(axis=1), 1.0, atol=1e-5)  # a softmax


def test_predict_command_writes_one_column_per_group(run_dir, paths, tmp_path):
    from fashion_hier.cli import main

    out = tmp_path / "predictions.csv"
    assert main(["predict", "--run", str(run_dir), "--images", str(paths[0].rsplit("/", 1)[0]), "--out", str(out),
                 "--no-progress"]) == 0
    table = pd.read_csv(out, keep_default_na=False, na_values=[""])
    space = Predictor.load(run_dir).label_space
    assert list(table.columns) == [*prediction_columns(space), "error"]
    assert "base colour" in table.columns and "attributes" not in table.columns
    expected = Predictor.load(run_dir).predict(table["image_path"].tolist())
    for group in space.groups:
        assert table[group.name].fillna("").tolist() == expected[group.name].fillna("").tolist(), group.name
    np.testing.assert_allclose(table["gender_score"], expected["gender_score"].astype(float), rtol=1e-5)
