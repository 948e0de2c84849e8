"""The notebooks: committed without outputs as build_notebooks.py writes them, and each runs end to end when small.

Execution uses nbclient with the ``parameters`` cell replaced (what papermill does), on the
synthetic catalogue; notebook 02's download step is pointed at a local synthetic catalogue.
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_quickstart.ipynb", "02_fashion_product_images.ipynb", "03_error_analysis.ipynb")


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOK_DIR / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parameters_cell(notebook) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    return tagged[0]


def _run(name: str, workdir: Path, **parameters) -> nbformat.NotebookNode:
    """Execute ``name`` in ``workdir`` with its parameters cell replaced by ``parameters`` (all names must exist)."""
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    index = _parameters_cell(notebook)
    declared = set(re.findall(r"^(\w+) =", notebook.cells[index].source, flags=re.MULTILINE))
    assert set(parameters) <= declared, f"not parameters of {name}: {set(parameters) - declared}"
    notebook.cells[index].source += "\n" + "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return notebook


def _text_outputs(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
            parts.append(output.get("data", {}).get("text/markdown", ""))
    return "\n".join(parts)


def test_committed_notebooks_are_what_the_builder_writes_without_outputs(tmp_path):
    written = _builder().main(tmp_path)
    assert sorted(path.name for path in written) == sorted(NAMES)
    for name in NAMES:
        assert (NOTEBOOK_DIR / name).read_text() == (tmp_path / name).read_text(), \
            f"{name} is stale: run python notebooks/build_notebooks.py"
        notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        assert all(not cell.get("outputs") and cell.get("execution_count") is None
                   for cell in notebook.cells if cell.cell_type == "code")
        first_code = next(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code")
        assert _parameters_cell(notebook) == first_code


def test_colab_install_cell_runs_only_in_colab():
    for name in NAMES:
        notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        installs = [cell.source for cell in notebook.cells if '"pip", "install"' in cell.source]
        assert len(installs) == 1 and '"google.colab" in sys.modules' in installs[0]


TINY_QUICKSTART = dict(N_PRODUCTS=60, IMAGE_SIZE=32, EPOCHS=1)


@pytest.mark.slow  # trains a tiny model (~20-40 s on 2 shared cores)
def test_quickstart_trains_evaluates_and_predicts(tmp_path):
    notebook = _run("01_quickstart.ipynb", tmp_path, WORK_DIR="work", **TINY_QUICKSTART)
    run_dir = tmp_path / "work" / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    text = _text_outputs(notebook)
    assert (run_dir / "metrics.md").read_text().strip() in text  # the table shown is evaluate's
    images = [output for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
    assert len(images) == len(list((run_dir / "plots").glob("*.png"))) + 1  # the run's plots + the prediction grid
    assert metrics["n_samples"] > 0 and (tmp_path / "work" / "predictions.png").is_file()


@pytest.mark.slow  # two-stage training of a tiny model (~30-50 s on 2 shared cores)
def test_fashion_product_images_runs_on_a_local_catalogue(tmp_path):
    from fashion_hier.data import make_synthetic_catalog

    labels_csv = make_synthetic_catalog(tmp_path / "kaggle_like", n=60, image_size=32, seed=1)
    _run("02_fashion_product_images.ipynb", tmp_path, SOURCE="local", LOCAL_DIR=str(labels_csv.parent),
         WORK_DIR=str(tmp_path / "work"), PER_FOLDER=25, BACKBONE="small_cnn", WEIGHTS=None, IMAGE_SIZE=32,
         BATCH_SIZE=16, FREEZE_EPOCHS=1, EPOCHS=2, SAVE_TO=str(tmp_path / "drive"))
    spread = tmp_path / "work" / "images"
    assert sorted(len(list(folder.iterdir())) for folder in spread.iterdir()) == [10, 25, 25]
    saved = tmp_path / "drive" / "fashion_product_images"
    for name in ("model.keras", "labels.json", "config.yaml", "metrics.json", "thresholds.json", "history.csv"):
        assert (saved / name).is_file(), name
    assert len((saved / "history.csv").read_text().strip().splitlines()) == 1 + 2  # header + one epoch per stage


@pytest.mark.slow  # trains the demo's run at its smallest (~20-40 s on 2 shared cores)
def test_error_analysis_reports_what_the_predictions_show(tmp_path):
    notebook = _run("03_error_analysis.ipynb", tmp_path, WORK_DIR="work", N_PRODUCTS=60, EPOCHS=1, SHOW=4)
    saved = np.load(tmp_path / "work" / "run" / "predictions.npz")
    text = _text_outputs(notebook)
    category = saved["category_score"].argmax(axis=1)
    subcategory = saved["subcategory_score"].argmax(axis=1)
    inconsistent = int((saved["parents"][subcategory] != category).sum())
    assert f"{inconsistent} of {len(category)} predictions inconsistent" in text
    for level, wrong in (("category", (category != saved["category_true"]).sum()),
                         ("subcategory", (subcategory != saved["subcategory_true"]).sum())):
        assert f"{level}: {wrong} of {len(category)} test images wrong" in text
    assert (tmp_path / "work" / "run" / "thresholds.json").is_file()  # TUNE_THRESHOLDS is on by default
