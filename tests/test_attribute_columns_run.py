"""Attribute columns end to end on the Meesho-shaped synthetic catalogue: train (images and cached features),
evaluate, predict — each group's numbers recomputed here with scikit-learn from what the run wrote."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from fashion_hier.config import TrainConfig
from fashion_hier.labels import UNKNOWN

SIZE = 32
GROUPS = [{"name": f"attr_{k}"} for k in range(1, 6)] + [{"name": "tags", "kind": "multi", "separator": "|"}]


@pytest.fixture(scope="module")
def meesho(tmp_path_factory):
    from fashion_hier.data import make_synthetic_catalog

    root = tmp_path_factory.mktemp("meesho")
    return make_synthetic_catalog(root / "data", n=160, image_size=SIZE, seed=2, schema="meesho"), root


def _config(meesho, name: str, *overrides: str) -> TrainConfig:
    labels_csv, root = meesho
    return TrainConfig.from_dict({
        "data": {"labels_csv": str(labels_csv), "image_dir": str(labels_csv.parent / "images"),
                 "image_size": [SIZE, SIZE], "augment": False, "split": [0.6, 0.2, 0.2],
                 "columns": {"category": "category", "subcategory": "subcategory", "groups": GROUPS}},
        "model": {"backbone": "small_cnn", "weights": None, "units": 8},
        "loss": {"focal_gamma": 1.0},
        "training": {"epochs": 1, "batch_size": 16, "jit_compile": False, "mixed_precision": "off",
                     "run_eagerly": True},
        "output_dir": str(root), "name": name,
    }).with_overrides(list(overrides))


@pytest.fixture(scope="module")
def evaluated_run(meesho):
    from fashion_hier.evaluate import evaluate_run
    from fashion_hier.train import train

    run = train(_config(meesho, "images"), verbose=0)
    return run, evaluate_run(run, progress=False)


def test_learned_applicability_matches_the_catalogue_map(evaluated_run):
    from fashion_hier.data.synthetic_meesho import meesho_attribute_map
    from fashion_hier.labels import LabelSpace
    from fashion_hier.rundir import RunDir

    space = LabelSpace.load(RunDir(evaluated_run[0]).labels)
    applies = {category: set(columns) for category, columns in meesho_attribute_map().items()}
    for group in space.groups[:5]:
        assert set(group.applies_to) == {c for c in space.categories if group.name in applies[c]}, group.name


def test_evaluate_scores_each_group_on_its_known_rows_as_scikit_learn_does(evaluated_run):
    from fashion_hier.labels import LabelSpace
    from fashion_hier.rundir import RunDir

    run, result = evaluated_run
    space = LabelSpace.load(RunDir(run).labels)
    saved = np.load(RunDir(run).predictions)
    truth, scores = saved["attributes_true"], saved["attributes_score"]
    test = pd.read_csv(RunDir(run).split("test"))
    for group in space.groups:
        figures, block = result["groups"][group.name], truth[:, group.slice]
        known = block[:, 0] != UNKNOWN
        applies = test["category"].isin(group.applies_to).to_numpy()
        # empty cells never count; a single value never seen in training is unknown too
        cells = (test[group.name].isin(group.values) if group.kind == "single" else test[group.name].notna()).to_numpy()
        assert figures["known"] == int(known.sum()) == int((applies & cells).sum())
        if group.kind == "single" and known.any():
            true, predicted = block[known].argmax(axis=1), scores[known, group.slice].argmax(axis=1)
            assert figures["accuracy"] == pytest.approx(accuracy_score(true, predicted))
            assert figures["macro_f1"] == pytest.approx(f1_score(true, predicted, average="macro"))
    markdown = (RunDir(run).metrics_md).read_text()
    assert "| attr_2 | single |" in markdown and "| tags | multi |" in markdown
    assert 'id="groups"' in RunDir(run).report_html.read_text()
    assert (RunDir(run).plots / "group_attr_1.png").stat().st_size > 0


def test_predict_answers_per_column_and_blanks_columns_that_do_not_apply(evaluated_run, tmp_path):
    from fashion_hier import Predictor
    from fashion_hier.labels import LabelSpace
    from fashion_hier.rundir import RunDir

    run = evaluated_run[0]
    space = LabelSpace.load(RunDir(run).labels)
    paths = pd.read_csv(RunDir(run).split("test"))["image_path"].tolist()
    table = Predictor.load(run).predict(paths)
    assert list(table.columns) == ["image_path", "category", "category_score", "subcategory", "subcategory_score",
                                   *[c for g in space.groups for c in (g.name, f"{g.name}_score")], "needs_review"]
    for group in space.groups:
        applies = table["category"].isin(group.applies_to)
        assert table.loc[~applies, group.name].isna().all()
        if group.kind == "single":
            assert table.loc[applies, group.name].isin(group.values).all()
            assert table.loc[applies, f"{group.name}_score"].between(0, 1).all()
            # attr_2 is a pattern for tops and a size for bags: a category is only ever answered its own values
            for category, value in table.loc[applies, ["category", group.name]].itertuples(index=False):
                assert value in group.values_by_category[category], (group.name, category, value)


def test_cached_feature_head_trains_the_same_schema(meesho):
    from fashion_hier.labels import LabelSpace
    from fashion_hier.rundir import RunDir
    from fashion_hier.train import train

    run = RunDir(train(_config(meesho, "cached", "model.trainable_backbone=false", "training.cache_features=true",
                               "loss.weighting=logit_adjustment"), verbose=0))
    assert LabelSpace.load(run.labels).grouped and run.model.is_file()


def test_the_readme_config_for_this_shape_reads_the_catalogue(meesho):
    import re
    from pathlib import Path

    import yaml

    from fashion_hier.labels import LabelSpace
    from fashion_hier.data.catalog import read_config_catalog

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "groups:" in b)
    labels_csv = meesho[0]
    config = TrainConfig.from_dict(yaml.safe_load(block)).with_overrides(
        [f"data.labels_csv={labels_csv}", f"data.image_dir={labels_csv.parent / 'images'}"])
    catalog = read_config_catalog(config)
    space = LabelSpace.from_columns(catalog.frame, config.data.columns)
    assert [g.name for g in space.groups] == [f"attr_{k}" for k in range(1, 6)] + ["tags"]
    assert space.group("attr_3").applies_to and len(space.group("attr_3").applies_to) < len(space.categories)


@pytest.mark.slow
def test_partial_fine_tune_from_cached_maps_trains_and_answers_the_same_schema(meesho):
    from fashion_hier import Predictor
    from fashion_hier.rundir import RunDir
    from fashion_hier.train import train

    run = RunDir(train(_config(meesho, "partial", "model.backbone=resnet50", "model.trainable_backbone=false",
                               "training.cache_features=true", "model.trainable_from=conv4_block6_out",
                               "training.finetune_epochs=1"), verbose=0))
    assert run.finished_info()["finetune"]["epochs"] == 1
    table = Predictor.load(run.path).predict(pd.read_csv(run.split("test"))["image_path"].tolist()[:4])
    assert {"attr_1", "attr_1_score", "tags", "tags_score"} <= set(table.columns)


@pytest.mark.parametrize("head", ["independent", "linear"])
def test_every_head_ends_in_the_per_group_activation(head):
    from fashion_hier.models import build_head_model

    model = build_head_model(2, 3, 5, feature_dim=4, units=4, head=head, attribute_layout=[("single", 2), ("multi", 3)])
    scores = model.predict(np.random.default_rng(0).random((3, 4)).astype(np.float32), verbose=0)["attributes"]
    np.testing.assert_allclose(scores[:, :2].sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("attributes").__class__.__name__ == "GroupActivation"
