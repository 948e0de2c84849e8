"""README.md's shell blocks run as written: every ```bash block, in README order, in one folder laid out like
the repository's checkout, on a tiny synthetic catalogue, with only the substitutions listed here.

What the folder holds that the README's commands name (``CHECKOUT``, made by ``_lay_out``):

=================================================  =============================================================
path, relative to the working folder               what the test puts there
=================================================  =============================================================
``styles.csv``, ``images/``                        a synthetic catalogue (``make_synthetic_catalog``: 60 products,
                                                   32 px) in the Fashion Product Images layout
``../shared/data/fashion-product-images/``         the same catalogue, where ``fpi_recipe.yaml`` reads the photos
``new_photos/`` (``shoe.jpg`` among them)          4 of its photos; ``shoe.jpg`` is a Footwear product's
``experiments/configs/``                           a copy of the repository's configs
``~/.cache/fashion_hier/weights/resnet50_..h5``    a randomly initialised ResNet-50 without top, Keras 2 ``.h5``
                                                   layout (``HOME`` is a temporary folder)
``../shared/tools/get_resnet50_imagenet.sh``       a stand-in that checks that file: the real script needs npm and
                                                   the network
``fashion-hier``, ``python``, ``python3``          on ``PATH``: this checkout's CLI and this interpreter
=================================================  =============================================================

Blocks 1 and 2 are the set-up commands (``SETUP``): ``pip install`` is not run (the package under test is
importable already) and the demo runs tiny; the second block, the test suite itself, is skipped.
``SUBSTITUTIONS`` shrinks the rest (small CNN or 1 epoch instead of ResNet-50 for 10-20 epochs, 60 products
instead of 600, two configs instead of all) and fills the README's placeholders; each source text must be
in the README, so a changed command fails here until the table is updated. A command's stderr must hold
none of TensorFlow's native log lines.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_logs import NATIVE_LINE
from test_readme import FENCE, README

ROOT = Path(__file__).resolve().parents[1]
SETUP = {"pip install . && fashion-hier demo\n": "fashion-hier demo --n 60 --epochs 1\n",
         'pip install ".[dev]" && python3 -m pytest -q\n': None}  # None: skipped (the test suite itself)
WEIGHTS = "~/.cache/fashion_hier/weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
# a run of paper_resnet50_mp.yaml that trains in seconds: the small CNN from scratch, 32 px, 1 epoch
TINY_RUN = ('model.backbone=small_cnn model.weights=null model.units=8 "data.image_size=[32, 32]" '
            "data.augment=false training.epochs=1")
# fpi_recipe.yaml's stages, short: 3 head epochs (its warm-up takes 2), 1 of fine-tuning
TINY_RECIPE = "training.epochs=3 training.finetune_epochs=1"
SUBSTITUTIONS = [  # (README text, what runs instead): why
    # block "Command line": runs/paper is a tiny small-CNN run (hence audit's flag below)
    ("data.image_dir=images name=paper", f"data.image_dir=images name=paper {TINY_RUN}"),
    # a one-epoch model is right on no confidence band, so no accuracy target is reachable: calibration alone
    # (the option itself is checked against evaluate's --help below; test_calibrate_run exercises it)
    ("--calibrate --target-accuracy 0.98", "--calibrate"),
    # the recipe's placeholders; output_dir as the later block's, so that both use one set of caches
    ("model.weights=PATH output_dir=OUT name=NAME",
     f"model.weights={WEIGHTS} output_dir=runs/fpi name=one_command {TINY_RECIPE}"),
    # the setup block's demo already wrote fashion_hier_demo in this folder
    ("fashion-hier demo --out fashion_hier_demo", "fashion-hier demo --out fashion_hier_demo --n 60 --epochs 1 --overwrite"),
    # all ten configs at full size take hours: two, tiny, on the catalogue in this folder
    ("experiments/configs/*.yaml --data DIR",
     f"experiments/configs/paper_resnet50_mp.yaml experiments/configs/ablation_no_top_down.yaml --data . --set {TINY_RUN}"),
    # the small CNN has no pretrained weights: audit refuses it unless told
    ("fashion-hier audit --run runs/paper --out audit/", "fashion-hier audit --run runs/paper --out audit/ --allow-untrained-backbone"),
    # block "ImageNet weights offline": ResNet-50 itself, at 32 px for 1 epoch
    ("paper_resnet50_mp.yaml --set data.labels_csv=styles.csv data.image_dir=images",
     'paper_resnet50_mp.yaml --set data.labels_csv=styles.csv data.image_dir=images "data.image_size=[32, 32]" '
     "data.augment=false training.epochs=1"),
    # block "Synthetic catalogue": one ablation instead of five, 60 products at 32 px, 8 units, 1 epoch
    ("experiments/configs/ablation_*.yaml", "experiments/configs/ablation_no_top_down.yaml"),
    ("--synthetic 600", "--synthetic 60"),
    ("model.units=64", "model.units=8"),
    ('"data.image_size=[64, 64]"', '"data.image_size=[32, 32]"'),
    ("training.epochs=20", "training.epochs=1"),
    # block "Fashion Product Images": the recipe on the tiny catalogue, one epoch per stage
    ("output_dir=runs/fpi name=recipe", f"output_dir=runs/fpi name=recipe {TINY_RECIPE}"),
]
PLACEHOLDER = re.compile(r"=(?:PATH|OUT|NAME)\b|\bDIR\b|\bCSV\b")  # the README's words for "yours here"
OPTIONAL = {"openvino": "predict --engine openvino, export --format openvino", "pyspark": "predict --spark",
            "faiss": "index, similar", "cleanlab": "audit"}


def _bash_blocks() -> list[tuple[int, str]]:
    """(README line of the opening fence, body) of every ```bash block, in order."""
    return [(README.count("\n", 0, match.start()) + 1, match.group(2))
            for match in FENCE.finditer(README) if match.group(1) == "bash"]


def _as_run(blocks: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(line, what runs) per block: set-up ones replaced (None: skipped), ``SUBSTITUTIONS`` applied to the rest
    (each must apply once)."""
    setup, rest = blocks[:len(SETUP)], blocks[len(SETUP):]
    assert [body for _, body in setup] == list(SETUP), "README's set-up blocks changed; update SETUP in this test"
    source = "".join(body for _, body in rest)
    for old, _ in SUBSTITUTIONS:
        assert source.count(old) == 1, f"README's shell blocks should hold {old!r} once; update SUBSTITUTIONS"
    runs = [(line, SETUP[body]) for line, body in setup]
    for line, body in rest:
        for old, new in SUBSTITUTIONS:
            body = body.replace(old, new)
        runs.append((line, body))
    return runs


def test_every_substitution_applies_and_no_placeholder_is_left():
    runs = _as_run(_bash_blocks())
    assert [body is None for _, body in runs].count(True) == 1  # the test suite's own block alone is skipped
    for line, body in runs:
        code = "\n".join(text.split("#")[0] for text in (body or "").splitlines())  # comments may name placeholders
        assert not PLACEHOLDER.search(code), f"a placeholder is left in the block at line {line}: {code}"


def _lay_out(root: Path) -> tuple[Path, dict[str, str]]:
    """The folder of the module docstring's table under ``root``; returns the working folder and the environment."""
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from fashion_hier.data import make_synthetic_catalog

    checkout, home, shared, bin_dir = root / "checkout", root / "home", root / "shared", root / "bin"
    labels_csv = make_synthetic_catalog(root / "catalog", n=60, image_size=32, seed=1)
    fpi = shared / "data" / "fashion-product-images"
    for folder in (checkout, fpi):
        folder.mkdir(parents=True)
        (folder / "styles.csv").symlink_to(labels_csv)
        (folder / "images").symlink_to(labels_csv.parent / "images", target_is_directory=True)
    shutil.copytree(ROOT / "experiments" / "configs", checkout / "experiments" / "configs")
    photos = checkout / "new_photos"
    photos.mkdir()
    import pandas as pd

    catalog = pd.read_csv(labels_csv)
    shoe = catalog[catalog["masterCategory"] == "Footwear"]["id"].iloc[0]
    shutil.copy(labels_csv.parent / "images" / f"{shoe}.jpg", photos / "shoe.jpg")
    for product in catalog[catalog["id"] != shoe]["id"].iloc[:3]:
        shutil.copy(labels_csv.parent / "images" / f"{product}.jpg", photos)
    weights = Path(WEIGHTS.replace("~", str(home), 1))
    weights.parent.mkdir(parents=True)
    resnet = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    import h5py

    with h5py.File(weights, "w") as weights_file:  # the layout of Keras's download and of the real script
        legacy_h5_format.save_weights_to_hdf5_group(weights_file, resnet)
    (shared / "tools").mkdir()
    (shared / "tools" / "get_resnet50_imagenet.sh").write_text(f'test -s {WEIGHTS} && echo "{WEIGHTS} is there"\n')
    bin_dir.mkdir()
    for name, command in (("fashion-hier", f'"{sys.executable}" -m fashion_hier.cli'),
                          ("python", f'"{sys.executable}"'), ("python3", f'"{sys.executable}"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "HOME": str(home), "MPLBACKEND": "Agg",
           "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user has it: the library's own quieting is under test too
    return checkout, env


@pytest.mark.slow
def test_every_readme_shell_block_runs_as_written(tmp_path):
    for module, needed_by in OPTIONAL.items():
        pytest.importorskip(module, reason=f"{needed_by} in README.md need {module}")
    if shutil.which("java") is None:
        pytest.skip("predict --spark in README.md needs Java")
    checkout, env = _lay_out(tmp_path)
    usage = subprocess.run(["fashion-hier", "evaluate", "--help"], env=env, capture_output=True, text=True)
    assert "--target-accuracy" in usage.stdout  # the option SUBSTITUTIONS drops
    for line, body in _as_run(_bash_blocks()):
        if body is None:
            continue
        done = subprocess.run(["bash", "-e", "-c", body], cwd=checkout, env=env, capture_output=True, text=True,
                              timeout=1800)
        assert done.returncode == 0, f"README.md's bash block at line {line} failed:\n{body}\n{done.stderr[-4000:]}"
        assert not NATIVE_LINE.search(done.stderr), f"TensorFlow's native lines from the block at line {line}"
    import pandas as pd

    photos = sorted(path.name for path in (checkout / "new_photos").iterdir())
    for table in (pd.read_csv(checkout / "predictions.csv"), pd.read_parquet(checkout / "predictions.parquet")):
        assert sorted(Path(path).name for path in table["image_path"]) == photos
    for written in ("runs/paper/metrics.json", "runs/paper_resnet50_mp/model.keras", "runs/fpi/one_command/model.keras",
                    "runs/fpi/recipe/metrics.json", "fashion_hier_demo/run/metrics.json", "audit/audit.csv",
                    "exported/paper/saved_model.pb", "index/paper", "neighbours", "exported/paper_int8"):
        assert (checkout / written).exists(), written
