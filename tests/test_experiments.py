"""experiments: the paper/ablation configs, and the runner's records and comparison table on a tiny catalogue."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fashion_hier.commands.experiments import main
from fashion_hier.config import ConfigError, LossConfig, TrainConfig
from fashion_hier.experiments import (
    COST_COLUMNS,
    METRIC_COLUMNS,
    comparison_frame,
    comparison_markdown,
    experiment_configs,
    images_per_second,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "experiments" / "configs"
PAPER = CONFIG_DIR / "paper_resnet50_mp.yaml"
ABLATIONS = {  # config -> the only settings in which it differs from the paper's
    "ablation_independent_heads": {"model.head": "independent"},
    "ablation_unweighted_losses": {"loss.weighting": "none"},
    "ablation_no_top_down": {"model.top_down": False},
    "ablation_no_bottom_up": {"model.bottom_up": False},
    "ablation_frozen_backbone": {"model.trainable_backbone": False},
}
TINY = ["data.image_size=[32, 32]", "data.augment=false", "model.backbone=mobilenetv2", "model.weights=null",
        "model.units=8", "training.batch_size=16", "training.epochs=2", "training.jit_compile=false",
        "training.run_eagerly=true"]


def _flat(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        flat.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def test_paper_config_is_the_papers_setup():
    config = TrainConfig.from_yaml(PAPER)
    assert (config.model.backbone, config.model.weights, config.model.head) == ("resnet50", "imagenet", "message_passing")
    assert config.model.top_down and config.model.bottom_up and config.model.trainable_backbone
    assert (config.model.units, config.model.l2, config.model.dropout) == (1024, 5e-4, 0.3)
    assert config.data.image_size == (224, 224) and config.training.batch_size == 32
    assert (config.optimizer.name, config.optimizer.learning_rate) == ("adam", 1e-3)
    assert config.loss.weighting == "inverse_frequency" and config.loss.power == 1.0
    # The ablation files list only their change (and the paper's weighting, which the library's default
    # replaced by measurement), so the paper's file must equal TrainConfig's defaults but for that.
    assert config == TrainConfig(name="paper_resnet50_mp", loss=LossConfig(weighting="inverse_frequency"))


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_each_ablation_differs_from_the_paper_only_in_its_switch(name):
    paper = _flat(TrainConfig.from_yaml(PAPER).to_dict())
    ablation = _flat(TrainConfig.from_yaml(CONFIG_DIR / f"{name}.yaml").to_dict())
    changed = {key: value for key, value in ablation.items() if paper[key] != value}
    assert changed == {"name": name, **ABLATIONS[name]}


def test_every_config_in_the_folder_is_tested():
    assert {path.stem for path in CONFIG_DIR.glob("*.yaml") if not path.stem.startswith("fpi_")} == {PAPER.stem, *ABLATIONS}


def test_images_per_second_leaves_out_epochs_that_traced_the_graph():
    # Two fits (two stages): the first epoch of each traced the graph.
    seconds, first = [10.0, 2.0, 2.0, 8.0, 4.0], [True, False, False, True, False]
    assert images_per_second(seconds, first, 100) == pytest.approx(300 / 8.0)
    assert images_per_second([5.0], [True], 100) == pytest.approx(20.0)  # a single epoch is all there is
    assert math.isnan(images_per_second([], [], 100))


def _record(name: str, value: float) -> dict:
    metrics = {level: {} for level in ("category", "subcategory", "attributes", "hierarchy")}
    for column in METRIC_COLUMNS:
        level, key = column.split(".", 1)
        metrics[level][key] = value
    metrics["attributes"]["mAP"] = None  # undefined (no positives) is null in metrics.json
    return {"name": name, "metrics": metrics, "epochs": 3, "train_seconds": 61.4, "images_per_second": 12.345,
            "parameters": 1234567, "trainable_parameters": 1000}


def test_comparison_table_has_every_metric_and_cost_per_run():
    frame = comparison_frame([_record("a", 0.5), _record("b", 0.25)])
    assert list(frame.index) == ["a", "b"] and list(frame.columns) == [*METRIC_COLUMNS, *COST_COLUMNS]
    assert frame.loc["b", "category.OF1"] == 0.25 and np.isnan(frame.loc["a", "attributes.mAP"])
    markdown = comparison_markdown(frame).splitlines()
    assert markdown[0] == "| metric | a | b |"
    assert "| category.OF1 | 50.0 | 25.0 |" in markdown
    assert "| attributes.mAP |  |  |" in markdown
    assert "| parameters | 1,234,567 | 1,234,567 |" in markdown
    assert "| images_per_second | 12.3 | 12.3 |" in markdown


def test_comparison_table_adds_each_attribute_columns_figures_for_runs_that_have_them():
    grouped = _record("grouped", 0.5)
    grouped["metrics"]["groups"] = {"season": {"kind": "single", "accuracy": 0.8, "macro_f1": 0.6, "hmean_f1": 0.7},
                                    "tags": {"kind": "multi", "mAP": 0.4, "OF1": 0.3}}
    frame = comparison_frame([_record("flat", 0.5), grouped])
    assert list(frame.columns) == [*METRIC_COLUMNS, "groups.season.accuracy", "groups.season.macro_f1",
                                   "groups.season.hmean_f1", "groups.tags.mAP", "groups.tags.OF1", *COST_COLUMNS]
    assert frame.loc["grouped", "groups.season.accuracy"] == 0.8 and np.isnan(frame.loc["flat", "groups.tags.mAP"])
    assert "| groups.season.accuracy |  | 80.0 |" in comparison_markdown(frame).splitlines()


def test_configs_sharing_a_name_are_refused_naming_both_files(tmp_path):
    for stem in ("one", "two"):
        (tmp_path / f"{stem}.yaml").write_text("name: same\n")
    with pytest.raises(ConfigError, match=r"one\.yaml.*two\.yaml.*'same'"):
        experiment_configs([tmp_path / "one.yaml", tmp_path / "two.yaml"], out_dir=tmp_path)


def test_runner_refuses_a_data_folder_without_styles_csv(tmp_path, capsys):
    assert main([str(PAPER), "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "styles.csv and images/" in capsys.readouterr().err


def test_runner_refuses_an_unknown_override(tmp_path, capsys):
    assert main([str(PAPER), "--set", "model.depth=3", "--out", str(tmp_path)]) == 2
    assert "model.depth" in capsys.readouterr().err


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One tiny run trained by the runner, beside a finished run (run.json only) that it must reuse."""
    out = tmp_path_factory.mktemp("results")
    earlier = out / "earlier"
    earlier.mkdir()
    (earlier / "run.json").write_text(json.dumps(_record("earlier", 0.125)))
    config = out / "tiny.yaml"
    config.write_text("name: tiny\n")
    (out / "earlier.yaml").write_text("name: earlier\n")
    code = main([str(config), str(out / "earlier.yaml"), "--synthetic", "60", "--synthetic-image-size", "32",
                 "--out", str(out), "--verbose", "0", "--set", *TINY])
    assert code == 0
    return out


@pytest.mark.slow  # trains a tiny model (~20-50 s on 2 shared cores)
def test_runner_writes_the_run_and_a_comparison_matching_evaluate(sweep):
    import keras

    run_dir = sweep / "tiny"
    record = json.loads((run_dir / "run.json").read_text())
    report = json.loads((run_dir / "metrics.json").read_text())  # written by evaluate_run
    table = pd.read_csv(sweep / "comparison.csv", index_col="run")
    assert list(table.index) == ["tiny", "earlier"]
    for column in METRIC_COLUMNS:
        level, key = column.split(".", 1)
        expected = report[level][key]
        assert (np.isnan(table.loc["tiny", column]) if expected is None
                else table.loc["tiny", column] == pytest.approx(expected)), column
    assert table.loc["earlier", "category.OP"] == 0.125  # reused, not retrained
    assert not (sweep / "earlier" / "model.keras").exists()

    model = keras.saving.load_model(run_dir / "model.keras")
    assert record["parameters"] == model.count_params()
    assert record["trainable_parameters"] == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert record["epochs"] == len(pd.read_csv(run_dir / "history.csv")) == 2
    assert record["images_per_second"] > 0 and record["train_seconds"] > 0
    assert (sweep / "comparison.md").read_text().startswith("| metric | tiny | earlier |")


@pytest.mark.slow  # trains a tiny model (~20-50 s on 2 shared cores)
def test_runner_reuses_finished_runs_when_run_again(sweep):
    stamp = (sweep / "tiny" / "model.keras").stat().st_mtime_ns
    assert main([str(sweep / "tiny.yaml"), "--out", str(sweep), "--verbose", "0", "--set", *TINY]) == 0
    assert (sweep / "tiny" / "model.keras").stat().st_mtime_ns == stamp
    assert list(pd.read_csv(sweep / "comparison.csv")["run"]) == ["tiny"]


@pytest.mark.slow  # trains a tiny model (~20-50 s on 2 shared cores)
@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_sees_only_the_small_text_results(sweep, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(sweep, copy)
    subprocess.run(["git", "init", "-q", str(copy)], check=True)
    listed = subprocess.run(["git", "-C", str(copy), "status", "--porcelain", "--untracked-files=all"],
                            check=True, capture_output=True, text=True).stdout.split()
    seen = {name for name in listed if name != "??"}
    assert {"tiny/metrics.json", "tiny/metrics.md", "tiny/history.csv", "tiny/config.yaml", "tiny/run.json",
            "tiny/.gitignore"} <= seen
    assert not any(name.startswith("catalog/") or name.endswith((".keras", ".png", ".npz")) for name in seen)
    assert not any(name.startswith("tiny/splits") or name.startswith("tiny/plots") for name in seen)
