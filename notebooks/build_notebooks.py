"""Write the three notebooks (without outputs) from the cell sources below: ``python notebooks/build_notebooks.py``.

Keeping the cells here makes them easy to review and diff; the ``.ipynb`` files are generated.
Each notebook starts with a cell tagged ``parameters`` (data size, image size, epochs) that
``tests/test_notebooks.py`` replaces to run it small. The notebooks call the package's API only.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

INSTALL = '''\
# Colab only: install the library (elsewhere it is installed already: pip install .)
# INSTALL_FROM (parameters cell) is ONE of:
#   - a wheel on Google Drive: build it with `python -m build` in the project, upload dist/*.whl to Drive;
#   - the project's git URL, e.g. "git+https://github.com/<owner>/<repo>.git" (append @<tag> to pin a version).
# fashion-hier is not on PyPI: a bare package name would install nothing of ours, so it is refused.
import subprocess
import sys

if "google.colab" in sys.modules:
    if INSTALL_FROM.startswith("/content/drive/"):
        from google.colab import drive

        drive.mount("/content/drive")
    elif not INSTALL_FROM.startswith(("git+", "/", "./")):
        raise ValueError(f"INSTALL_FROM={INSTALL_FROM!r}: give a wheel path on Drive or the project's git URL "
                         "(git+https://...), not a package name; fashion-hier is not on PyPI")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", INSTALL_FROM], check=True)'''

QUICKSTART = [
    ("markdown", """\
# fashion_hier quickstart

Train the unified category / subcategory / attributes model (Ferreira et al. 2018) on a synthetic
catalogue that the library generates, evaluate it, look at the plots, and predict a few images.
Runs on a CPU in a few minutes; no data or downloads needed."""),
    ("parameters", '''\
# Parameters (tests run this notebook small by replacing this cell)
INSTALL_FROM = "/content/drive/MyDrive/fashion_hier-0.1.0-py3-none-any.whl"  # or the project's git URL: see the install cell
WORK_DIR = "fashion_hier_quickstart"
N_PRODUCTS = 600      # products in the synthetic catalogue
IMAGE_SIZE = 64       # pixels (square)
EPOCHS = 20
BACKBONE = "small_cnn"  # learns from scratch on a CPU; "resnet50" with ImageNet weights for real photos
SEED = 0'''),
    ("code", INSTALL),
    ("markdown", "## A catalogue\nThe Kaggle *Fashion Product Images* schema: one row per product, `subCategory` "
                 "feeds **category**, `articleType` **subcategory**, `season` and `usage` (here also `baseColour` "
                 "and `pattern`) the **attributes**."),
    ("code", '''\
from pathlib import Path

from fashion_hier import LabelColumns
from fashion_hier.data import make_synthetic_catalog, read_catalog

work = Path(WORK_DIR)
labels_csv = make_synthetic_catalog(work / "catalog", n=N_PRODUCTS, image_size=IMAGE_SIZE, seed=SEED)
columns = LabelColumns(attributes=("baseColour", "pattern", "season", "usage"))
catalog = read_catalog(labels_csv, labels_csv.parent / "images", columns=columns)
print(catalog.report)
catalog.frame.head()'''),
    ("markdown", "## The model\n`build_model` is the factory: backbone (pooled features) -> message-passing head -> "
                 "three outputs named `category`, `subcategory`, `attributes`."),
    ("code", '''\
from fashion_hier import build_model

label_space = catalog.label_space()
model = build_model(label_space.num_categories, label_space.num_subcategories, label_space.num_attributes,
                    backbone=BACKBONE, weights=None, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), units=64)
print(label_space)
print(f"{model.count_params():,} parameters; outputs {model.output_names}")'''),
    ("markdown", "## Train\n`train` reads a `TrainConfig` (YAML-able), splits the catalogue, weights the losses by "
                 "class frequency (the default `smoothed` scheme: count^-0.5, capped at 5x), builds the same model "
                 "and fits it into a run directory."),
    ("code", '''\
from fashion_hier.config import TrainConfig
from fashion_hier.train import train

config = TrainConfig.from_dict({  # every other value is the paper's setup (TrainConfig's defaults)
    "data": {"labels_csv": str(labels_csv), "image_dir": str(labels_csv.parent / "images"),
             "columns": {"attributes": ["baseColour", "pattern", "season", "usage"]},
             "image_size": [IMAGE_SIZE, IMAGE_SIZE], "augment": False, "seed": SEED},
    "model": {"backbone": BACKBONE, "weights": None, "units": 64, "l2": 0.0},
    "training": {"batch_size": 16, "epochs": EPOCHS, "jit_compile": False},
    "output_dir": str(work), "name": "run",
})
run_dir = train(config, overwrite=True, verbose=2)'''),
    ("markdown", "## Evaluate\nThe paper's table on the held-out test split, then the plots `evaluate_run` wrote."),
    ("code", '''\
from IPython.display import Image, Markdown, display

from fashion_hier.evaluate import evaluate_run

from fashion_hier import RunDir

run = RunDir(run_dir)  # names every file of the run
report = evaluate_run(run_dir, split="test", progress=False)
display(Markdown(run.metrics_md.read_text()))
for plot in sorted(run.plots.glob("*.png")):
    print(plot.name)
    display(Image(filename=str(plot)))'''),
    ("markdown", "## Predict\nA `Predictor` is the model + label space + thresholds: image paths in, names out."),
    ("code", '''\
import pandas as pd

from fashion_hier import Predictor

predictor = Predictor.load(run_dir)
test = pd.read_csv(run.split("test"), dtype=str).head(8)
predictions = predictor.predict(test["image_path"].tolist(), consistent=True)
predictions.assign(true_category=test["subCategory"].to_numpy(), true_subcategory=test["articleType"].to_numpy())'''),
    ("code", '''\
from fashion_hier.data import load_images
from fashion_hier.plots import plot_sample_grid

grid = plot_sample_grid(
    load_images(test["image_path"].tolist(), (IMAGE_SIZE, IMAGE_SIZE)),
    (test["subCategory"] + " / " + test["articleType"]).tolist(),
    (predictions["category"] + " / " + predictions["subcategory"]).tolist(),
    work / "predictions.png",
    correct=(predictions["subcategory"].to_numpy() == test["articleType"].to_numpy()).tolist(),
)
display(Image(filename=str(grid)))'''),
]

FASHION_PRODUCT_IMAGES = [
    ("markdown", """\
# Fashion Product Images with fashion_hier

The real use: the Kaggle [*Fashion Product Images*](https://www.kaggle.com/datasets/paramaggarwal/fashion-product-images-small)
catalogue (~44k products), ResNet-50 with ImageNet weights, two-stage training (heads on a frozen
backbone, then the whole network at a lower learning rate) on a GPU runtime
(*Runtime -> Change runtime type -> GPU*), evaluation, and the run saved to Google Drive.

Data comes from the Kaggle API (`SOURCE = "kaggle"`: put your `kaggle.json` token in
`~/.kaggle/` or set the `KAGGLE_USERNAME` / `KAGGLE_KEY` secrets), from a copy on Google Drive
(`SOURCE = "drive"`), or from a folder already on the machine (`SOURCE = "local"`)."""),
    ("parameters", '''\
# Parameters (tests run this notebook on a small local catalogue by replacing this cell)
INSTALL_FROM = "/content/drive/MyDrive/fashion_hier-0.1.0-py3-none-any.whl"  # or the project's git URL: see the install cell
SOURCE = "kaggle"              # "kaggle", "drive" or "local"
KAGGLE_DATASET = "paramaggarwal/fashion-product-images-small"  # full size: paramaggarwal/fashion-product-images-dataset
DRIVE_DIR = "/content/drive/MyDrive/fashion-product-images"    # SOURCE="drive": holds styles.csv and images/
LOCAL_DIR = None               # SOURCE="local": a folder holding styles.csv and images/
WORK_DIR = "/content/fashion_hier"
PER_FOLDER = 1000              # images per sub-folder (Drive times out on folders of many thousand files)
TARGET_SAMPLES = None          # e.g. 5000 for a quick look: a class-balanced sample of the catalogue
BACKBONE = "resnet50"
WEIGHTS = "imagenet"           # or a local file, e.g. from ../shared/tools/get_resnet50_imagenet.sh
IMAGE_SIZE = 224
BATCH_SIZE = 32
FREEZE_EPOCHS = 3              # stage 1: heads only, backbone frozen
EPOCHS = 10                    # total; stage 2 fine-tunes everything at FINETUNE_LR
FINETUNE_LR = 1e-4
SAVE_TO = "/content/drive/MyDrive/fashion_hier_runs"  # None: keep the run on this machine only'''),
    ("code", INSTALL),
    ("code", '''\
import keras

print("keras", keras.__version__, "| backend", keras.backend.backend())
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    print("GPUs:", tf.config.list_physical_devices("GPU") or "none - training a ResNet-50 on a CPU takes days")'''),
    ("markdown", "## Get the catalogue"),
    ("code", '''\
from pathlib import Path

work = Path(WORK_DIR)
work.mkdir(parents=True, exist_ok=True)
if SOURCE == "kaggle":
    subprocess.run(["kaggle", "datasets", "download", "-d", KAGGLE_DATASET, "-p", str(work / "download"), "--unzip"],
                   check=True)
    data_dir = next((work / "download").rglob("styles.csv")).parent  # the small and full zips nest differently
elif SOURCE == "drive":
    from google.colab import drive

    drive.mount("/content/drive")
    data_dir = Path(DRIVE_DIR)
elif SOURCE == "local":
    data_dir = Path(LOCAL_DIR)
else:
    raise ValueError(f"SOURCE must be 'kaggle', 'drive' or 'local', got {SOURCE!r}")
labels_csv = data_dir / "styles.csv"
print(labels_csv, "|", sum(1 for _ in labels_csv.open()) - 1, "rows")'''),
    ("markdown", "Spread the ~44k images into sub-folders of `PER_FOLDER` (resumable: run the cell again after a "
                 "Drive time-out). `read_catalog` finds images by id in sub-folders too."),
    ("code", '''\
from fashion_hier.data.layout import spread_into_subfolders

image_dir = work / "images"
print(spread_into_subfolders(data_dir / "images", image_dir, per_folder=PER_FOLDER))'''),
    ("code", '''\
from fashion_hier.data import read_catalog

catalog = read_catalog(labels_csv, image_dir, target_samples=TARGET_SAMPLES)
print(catalog.report)
print(catalog.label_space())'''),
    ("markdown", "## Train in two stages\nThe paper's setup (`experiments/configs/paper_resnet50_mp.yaml`, also "
                 "`TrainConfig`'s defaults) with a frozen-backbone first stage."),
    ("code", '''\
from fashion_hier.config import TrainConfig
from fashion_hier.train import train

config = TrainConfig.from_dict({
    "data": {"labels_csv": str(labels_csv), "image_dir": str(image_dir), "target_samples": TARGET_SAMPLES,
             "image_size": [IMAGE_SIZE, IMAGE_SIZE]},
    "model": {"backbone": BACKBONE, "weights": WEIGHTS},
    "training": {"batch_size": BATCH_SIZE, "freeze_epochs": FREEZE_EPOCHS, "epochs": EPOCHS,
                 "finetune_learning_rate": FINETUNE_LR},
    "output_dir": str(work / "runs"), "name": "fashion_product_images",
})
config.to_yaml(work / "config.yaml")  # the same run from a shell: fashion-hier train --config config.yaml
run_dir = train(config, verbose=2)     # an interrupted run continues from its last epoch when run again'''),
    ("markdown", "## Evaluate\nPer-attribute thresholds are tuned on the validation split first."),
    ("code", '''\
from IPython.display import Image, Markdown, display

from fashion_hier.evaluate import evaluate_run

from fashion_hier import RunDir

run = RunDir(run_dir)  # names every file of the run
report = evaluate_run(run_dir, split="test", tune_thresholds=True, progress=False)
display(Markdown(run.metrics_md.read_text()))
display(Image(filename=str(run.plots / "subcategory_f1.png")))'''),
    ("markdown", "## Save the run to Drive\nThe run directory is everything `Predictor.load` and `fashion-hier "
                 "evaluate / predict` need."),
    ("code", '''\
import shutil

if SAVE_TO:
    if str(SAVE_TO).startswith("/content/drive"):
        from google.colab import drive

        drive.mount("/content/drive")
    saved = shutil.copytree(run_dir, Path(SAVE_TO) / run_dir.name, dirs_exist_ok=True)
    print("run saved to", saved)'''),
]

ERROR_ANALYSIS = [
    ("markdown", """\
# Error analysis of a run

Where a trained run goes wrong: the worst classes, the most common confusions, images it gets
wrong at each level, per-label attribute thresholds, and predictions whose subcategory does not
belong to the predicted category. Point `RUN_DIR` at a run directory (from `fashion-hier train`
or notebook 02); left at `None`, the notebook trains the demo's small run first."""),
    ("parameters", '''\
# Parameters (tests run this notebook small by replacing this cell)
INSTALL_FROM = "/content/drive/MyDrive/fashion_hier-0.1.0-py3-none-any.whl"  # or the project's git URL: see the install cell
RUN_DIR = None         # a run directory; None: train the demo's small run on a synthetic catalogue
WORK_DIR = "fashion_hier_error_analysis"
N_PRODUCTS = 600       # synthetic catalogue size when RUN_DIR is None
EPOCHS = 20            # demo training epochs when RUN_DIR is None
TUNE_THRESHOLDS = True  # fit per-attribute thresholds on the validation split
SHOW = 8               # images per grid, rows per table'''),
    ("code", INSTALL),
    ("code", '''\
from pathlib import Path

from fashion_hier.demo import run_demo

if RUN_DIR is None:
    run_demo(WORK_DIR, n=N_PRODUCTS, epochs=EPOCHS, overwrite=True)
    RUN_DIR = Path(WORK_DIR) / "run"
run_dir = Path(RUN_DIR)'''),
    ("code", '''\
import numpy as np
import pandas as pd
from IPython.display import Image, Markdown, display

from fashion_hier import Predictor, RunDir
from fashion_hier.evaluate import evaluate_run

run = RunDir(run_dir)  # names every file of the run
report = evaluate_run(run_dir, split="test", tune_thresholds=TUNE_THRESHOLDS, progress=False)
display(Markdown(run.metrics_md.read_text()))
predictor = Predictor.load(run_dir)
space = predictor.label_space
saved = np.load(run.predictions)  # what evaluate scored: targets, scores, thresholds, parents
names = {"category": np.array(space.categories), "subcategory": np.array(space.subcategories)}
predicted = {level: saved[f"{level}_score"].argmax(axis=1) for level in names}'''),
    ("markdown", "## Worst classes\nLowest F1 on the test split (`per_class_<level>.csv`, written by evaluate)."),
    ("code", '''\
for level in ("category", "subcategory", "attributes"):
    table = pd.read_csv(run.per_class(level), index_col="class")
    display(Markdown(f"**{level}**"), table[table["support"] > 0].sort_values("f1").head(SHOW).round(3))'''),
    ("markdown", "## Confusions\nThe most frequent (true, predicted) pairs among the mistakes, and the "
                 "row-normalised category confusion matrix."),
    ("code", '''\
for level in names:
    pairs = pd.crosstab(names[level][saved[f"{level}_true"]], names[level][predicted[level]]).stack()
    mistakes = pairs[[true != pred for true, pred in pairs.index]]
    display(Markdown(f"**{level}**"),
            mistakes[mistakes > 0].sort_values(ascending=False).head(SHOW).rename_axis(["true", "predicted"]).to_frame("images"))
display(Image(filename=str(run.plots / "category_confusion_matrix.png")))'''),
    ("markdown", "## Images it gets wrong\nAt each level: category and subcategory by arg-max; attributes "
                 "where the set above the thresholds differs from the true set."),
    ("code", '''\
from fashion_hier.data import load_images
from fashion_hier.plots import plot_sample_grid

paths = saved["image_path"]
chosen = saved["attributes_score"] >= saved["thresholds"]
attribute_names = np.array(space.attributes)
shown = {
    level: (np.flatnonzero(predicted[level] != saved[f"{level}_true"]),
            names[level][saved[f"{level}_true"]], names[level][predicted[level]])
    for level in names
}
shown["attributes"] = (np.flatnonzero((chosen != saved["attributes_true"].astype(bool)).any(axis=1)),
                       np.array([", ".join(attribute_names[row]) for row in saved["attributes_true"].astype(bool)]),
                       np.array([", ".join(attribute_names[row]) for row in chosen]))
for level, (wrong, truth, guess) in shown.items():
    print(f"{level}: {len(wrong)} of {len(paths)} test images wrong")
    if len(wrong):
        rows = wrong[:SHOW]
        grid = plot_sample_grid(load_images(paths[rows], predictor.image_size), truth[rows], guess[rows],
                                run.plots / f"wrong_{level}.png", correct=[False] * len(rows))
        display(Image(filename=str(grid)))'''),
    ("markdown", "## Per-label thresholds\nThe threshold each attribute uses (tuned on the validation split when "
                 "`TUNE_THRESHOLDS`, else the paper's 0.75), beside its AP and F1 on the test split."),
    ("code", '''\
attributes = pd.read_csv(run.per_class("attributes"), index_col="class")
attributes.insert(0, "threshold", pd.Series(report["thresholds"]["attributes"]))
print("thresholds from:", report["thresholds"]["source"])
attributes.sort_values("AP").round(3)'''),
    ("markdown", "## Hierarchy-inconsistent predictions\nImages whose predicted subcategory belongs to another "
                 "category than the predicted one, and what the joint decode (`consistent=True`: the best "
                 "category-subcategory pair) picks instead."),
    ("code", '''\
parents = saved["parents"]
inconsistent = np.flatnonzero(parents[predicted["subcategory"]] != predicted["category"])
print(f"{len(inconsistent)} of {len(paths)} predictions inconsistent "
      f"(consistency {report['hierarchy']['consistency']:.3f})")
scores = {level: saved[f"{level}_score"][inconsistent] for level in ("category", "subcategory", "attributes")}
joint = predictor.decode(scores, paths[inconsistent], consistent=True) if len(inconsistent) else None
None if joint is None else pd.DataFrame({
    "image": [Path(path).name for path in paths[inconsistent]],
    "true": names["category"][saved["category_true"][inconsistent]] + " / "
            + names["subcategory"][saved["subcategory_true"][inconsistent]],
    "predicted": names["category"][predicted["category"][inconsistent]] + " / "
                 + names["subcategory"][predicted["subcategory"][inconsistent]],
    "joint decode": (joint["category"] + " / " + joint["subcategory"]).to_numpy(),
}).head(SHOW)'''),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_fashion_product_images.ipynb": FASHION_PRODUCT_IMAGES,
    "03_error_analysis.ipynb": ERROR_ANALYSIS,
}


def build_notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook without outputs; a ``parameters`` cell is a code cell tagged ``parameters``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata.update({
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": []},
    })
    for kind, source in cells:
        if kind == "markdown":
            notebook.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            notebook.cells.append(cell)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:02d}"  # stable ids: rebuilding an unchanged notebook gives the same file
    return notebook


def main(out_dir: Path | None = None) -> list[Path]:
    out_dir = out_dir or Path(__file__).resolve().parent
    written = []
    for name, cells in NOTEBOOKS.items():
        notebook = build_notebook(cells)
        nbformat.validate(notebook)
        path = out_dir / name
        nbformat.write(notebook, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main():
        print("wrote", path)
