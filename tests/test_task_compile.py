"""A loaded task's default compile() trains as its run did: the run's losses, level weights and optimiser."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.config import LossConfig, TrainConfig  # noqa: E402
from fashion_hier.labels import LEVELS, AttributeGroup, LabelColumns, LabelSpace  # noqa: E402
from fashion_hier.losses import losses_from_config  # noqa: E402
from fashion_hier.models import build_model  # noqa: E402
from fashion_hier.rundir import RunDir  # noqa: E402
from fashion_hier.task import HierarchicalClassifier  # noqa: E402
from fashion_hier.compiling import compile_model, weighted_losses  # noqa: E402
from fashion_hier.train import save_final_model  # noqa: E402

SIZE = 32
BATCH = 8
REPO = Path(__file__).resolve().parents[1]
FLAT = LabelSpace(categories=["Bags", "Shoes"], subcategories=["Backpacks", "Heels", "Sneakers"],
                  attributes=["Casual", "Summer", "Winter"],
                  parents={"Backpacks": "Bags", "Heels": "Shoes", "Sneakers": "Shoes"})
# both runs differ from the defaults in every setting that changes the loss or the optimiser
FLAT_CONFIG = {"loss": {"weighting": "inverse_frequency", "power": 0.5, "label_smoothing": 0.1,
                        "attribute_weight": 0.5},
               "optimizer": {"name": "adamw", "learning_rate": 3e-4, "weight_decay": 0.01, "schedule": "cosine",
                             "warmup_epochs": 1}}
GROUPED_CONFIG = {"loss": {"weighting": "logit_adjustment", "tau": 0.5, "label_smoothing": 0.05, "focal_gamma": 2.0,
                           "attribute_weight": 2.0},
                  "optimizer": {"name": "adam", "learning_rate": 5e-4}}


def _flat_case(rng) -> tuple[LabelSpace, dict]:
    n = 40
    return FLAT, {"category": rng.choice(2, n, p=[0.8, 0.2]), "subcategory": rng.choice(3, n, p=[0.6, 0.3, 0.1]),
                  "attributes": (rng.random((n, 3)) < [0.1, 0.5, 0.8]).astype(np.float32)}


def _grouped_case(rng) -> tuple[LabelSpace, dict]:
    n = 24
    category = rng.choice(["Top", "Shoe"], n, p=[0.7, 0.3])
    frame = pd.DataFrame({
        "cat": category,
        "sub": np.where(category == "Top", rng.choice(["T", "S"], n, p=[0.75, 0.25]), "B"),
        "colour": rng.choice(["Red", "Blue", None], n, p=[0.6, 0.25, 0.15]),
        "sleeve": np.where(category == "Top", rng.choice(["Long", "Short"], n), None),
        "tags": rng.choice(["a|b", "b", "c", "a|c", None], n),
    })
    groups = (AttributeGroup("colour"), AttributeGroup("sleeve"), AttributeGroup("tags", "multi", separator="|"))
    space = LabelSpace.from_columns(frame, LabelColumns("cat", "sub", groups=groups))
    return space, space.encode(frame)


def _network(space: LabelSpace, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_model(space.num_categories, space.num_subcategories, space.num_attributes, backbone="small_cnn",
                       weights=None, input_shape=(SIZE, SIZE, 3), units=8,
                       attribute_layout=space.attribute_layout)


def _evaluate(model: keras.Model, batch: dict) -> float:
    return model.evaluate(batch["images"], {level: batch[level] for level in LEVELS}, batch_size=BATCH, verbose=0,
                          return_dict=True)["loss"]


def _strip_new_keys(source: Path, target: Path) -> None:
    """``source`` as a task file written before the loss and optimiser settings were stored."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                for key in ("loss_settings", "optimizer_settings"):
                    del config["config"][key]
                data = json.dumps(config).encode()
            new.writestr(item, data)


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict:
    """Per case: the model file train writes, a batch, and training's own loss on that batch (same weights).

    ``old``: the flat run's file as written before the settings were stored, with the old defaults' loss.
    Everything runs eagerly: a tiny model evaluates in a fraction of a graph's tracing time.
    """
    root = tmp_path_factory.mktemp("task_compile")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
    cases = {}
    for seed, (name, make, settings) in enumerate([("flat", _flat_case, FLAT_CONFIG),
                                                    ("grouped", _grouped_case, GROUPED_CONFIG)]):
        space, train_labels = make(rng)
        config = TrainConfig.from_dict({**settings, "data": {"image_size": [SIZE, SIZE]},
                                        "training": {"run_eagerly": True}})
        network = _network(space, seed)
        batch = {"images": images, **{level: np.asarray(train_labels[level][:BATCH]) for level in LEVELS}}
        np.savez(root / f"{name}.npz", **batch)
        run = RunDir(root / name)
        run.path.mkdir()
        save_final_model(network, run, config=config, label_space=space, train_labels=train_labels)
        # training's own path on the same weights: the split's losses, config.loss's level weights, config.optimizer
        compile_model(network, config, weighted_losses(config, space, train_labels), space,
                      config.optimizer.learning_rate, False, steps_per_epoch=5, epochs=config.training.epochs)
        cases[name] = {"config": config, "model": run.model, "batch": root / f"{name}.npz",
                       "training_loss": _evaluate(network, batch)}
        if name == "flat":
            network.compile(loss=losses_from_config(LossConfig(), space, train_labels), run_eagerly=True)
            _strip_new_keys(run.model, root / "old.keras")
            cases["old"] = {"model": root / "old.keras", "batch": root / f"{name}.npz",
                            "training_loss": _evaluate(network, batch)}
    return cases


@pytest.mark.parametrize("name", ["flat", "grouped"])
def test_compile_on_a_loaded_task_gives_the_loss_training_gives_on_a_batch(cases, name):
    case = cases[name]
    model = keras.saving.load_model(case["model"])
    model.compile(run_eagerly=True)
    # same weights, graph and batch on the same CPU; oneDNN may sum float32 in another order
    np.testing.assert_allclose(_evaluate(model, dict(np.load(case["batch"]))), case["training_loss"], rtol=1e-5)

    config = case["config"]
    assert model.loss_settings == dataclasses.asdict(config.loss)
    assert model.optimizer_settings == dataclasses.asdict(config.optimizer)
    assert type(model.optimizer).__name__ == {"adam": "Adam", "adamw": "AdamW"}[config.optimizer.name]
    # a cosine schedule's remaining steps are unknown to a loaded task: constant at the configured rate
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(config.optimizer.learning_rate, rel=1e-6)
    if config.optimizer.name == "adamw":
        assert model.optimizer.weight_decay == pytest.approx(config.optimizer.weight_decay)


def test_a_task_file_written_before_the_settings_were_stored_loads_and_compiles_with_the_old_defaults(cases):
    old = cases["old"]
    model = keras.saving.load_model(old["model"])
    model.compile(run_eagerly=True)
    assert model.loss_settings is None and model.optimizer_settings is None
    assert type(model.optimizer).__name__ == "Adam"
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(1e-3)
    loss = _evaluate(model, dict(np.load(old["batch"])))
    np.testing.assert_allclose(loss, old["training_loss"], rtol=1e-5)
    # the same weights and batch as "flat": only the stored settings tell the two losses apart
    assert abs(loss - cases["flat"]["training_loss"]) > 0.01 * loss


@pytest.mark.slow
def test_in_a_fresh_process_the_loaded_tasks_compile_gives_trainings_loss(cases, tmp_path):
    """Nothing of this process (registered objects, compiled losses) helps: ``import keras, fashion_hier`` only."""
    requests = {name: {"model": str(case["model"]), "batch": str(case["batch"])} for name, case in cases.items()}
    script = textwrap.dedent(f"""
        import json, sys
        import keras, numpy as np, fashion_hier
        losses = {{}}
        for name, request in json.loads(sys.stdin.read()).items():
            model = keras.saving.load_model(request["model"])
            model.compile(run_eagerly=True)
            batch = np.load(request["batch"])
            losses[name] = model.evaluate(batch["images"], {{level: batch[level] for level in {list(LEVELS)!r}}},
                                          batch_size={BATCH}, verbose=0, return_dict=True)["loss"]
        json.dump(losses, open({str(tmp_path / "losses.json")!r}, "w"))
    """)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(requests), capture_output=True, text=True,
                          cwd=REPO, env={**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    losses = json.loads((tmp_path / "losses.json").read_text())
    for name, case in cases.items():
        np.testing.assert_allclose(losses[name], case["training_loss"], rtol=1e-5, err_msg=name)


# ---- construction ------------------------------------------------------------------------------

def test_settings_are_checked_filled_in_and_carried_by_replace_and_get_config():
    task = HierarchicalClassifier(_network(FLAT, 0), FLAT, loss_settings={"power": 0.5},
                                  optimizer_settings={"learning_rate": 1e-4})
    assert task.loss_settings == dataclasses.asdict(LossConfig(power=0.5))  # every key, for the record
    assert task.optimizer_config().learning_rate == 1e-4 and task.loss_config() == LossConfig(power=0.5)
    copy = task.with_thresholds(0.3)
    assert (copy.loss_settings, copy.optimizer_settings) == (task.loss_settings, task.optimizer_settings)
    clone = HierarchicalClassifier.from_config(json.loads(json.dumps(task.get_config())))
    assert (clone.loss_settings, clone.optimizer_settings) == (task.loss_settings, task.optimizer_settings)

    with pytest.raises(ValueError, match=r"^loss_settings: unknown config key 'loss.pwoer'"):
        HierarchicalClassifier(task.network, FLAT, loss_settings={"pwoer": 0.5})
    with pytest.raises(ValueError, match=r"^optimizer_settings: optimizer.name: 'sgd' is not one of"):
        HierarchicalClassifier(task.network, FLAT, optimizer_settings={"name": "sgd"})
    with pytest.raises(ValueError, match=r"^loss_settings: loss.power: expected a number >= 0"):
        HierarchicalClassifier(task.network, FLAT, loss_settings={"power": -1.0})


def test_explicit_compile_arguments_win_over_the_stored_settings():
    task = HierarchicalClassifier(_network(FLAT, 0), FLAT, loss_settings={"attribute_weight": 0.5},
                                  optimizer_settings={"name": "adamw"})
    task.compile(optimizer=keras.optimizers.SGD(0.1), loss_weights={"category": 1.0, "subcategory": 2.0,
                                                                    "attributes": 3.0})
    assert type(task.optimizer).__name__ == "SGD"
    assert task.get_compile_config()["loss_weights"] == {"category": 1.0, "subcategory": 2.0, "attributes": 3.0}
    task.compile()
    assert type(task.optimizer).__name__ == "AdamW"
    assert task.get_compile_config()["loss_weights"] == {"category": 1.0, "subcategory": 1.0, "attributes": 0.5}
