"""OpenVINO bf16 and int8 keep the answers on real catalogue photos: a head trained on ImageNet ResNet-50 features of
Fashion Product Images (the library's own cached-feature training), then the subcategory arg-max of Keras float32
against OpenVINO f32 / bf16 / int8 on the run's held-out photos. Slow (ResNet-50 at 224 px on a CPU); skipped
without the shared photos or the ImageNet weights (shared/tools/get_resnet50_imagenet.sh writes them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("openvino", reason="the openvino extra is not installed: pip install 'fashion-hier[openvino]'")
pytest.importorskip("nncf", reason="the openvino extra is not installed: pip install 'fashion-hier[openvino]'")

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-product-images"
WEIGHTS = Path("~/.cache/fashion_hier/weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").expanduser()
CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "fpi_recipe_flat.yaml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (PHOTOS / "styles.csv").is_file(), reason=f"no catalogue photos at {PHOTOS}"),
    pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"no ImageNet weights at {WEIGHTS} "
                                                     "(shared/tools/get_resnet50_imagenet.sh writes them)"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from fashion_hier.config import TrainConfig
    from fashion_hier.train import train

    root = tmp_path_factory.mktemp("engine_real")
    styles = pd.read_csv(PHOTOS / "styles.csv")
    styles = styles[[(PHOTOS / "images" / f"{i}.jpg").is_file() for i in styles["id"]]]
    common = styles["articleType"].value_counts().index[:8]  # 8 subcategories, 50 photos each
    subset = pd.concat([styles[styles["articleType"].eq(t)].head(50) for t in common])
    subset.to_csv(root / "styles.csv", index=False)
    config = TrainConfig.from_yaml(CONFIG).with_overrides([
        f"data.labels_csv={root / 'styles.csv'}", f"data.image_dir={PHOTOS / 'images'}", "data.flip_features=false",
        "model.backbone=resnet50", f"model.weights={WEIGHTS}", "model.trainable_from=null",
        "training.calibrate=false", "training.epochs=30", "training.batch_size=32", f"output_dir={root}", "name=real",
    ])
    return train(config, verbose=0)


def test_bf16_and_int8_keep_the_subcategory_answers_of_keras_float32(run):
    from fashion_hier.engine import EngineSpec
    from fashion_hier.predict import Predictor
    from fashion_hier.rundir import RunDir

    paths = pd.concat([pd.read_csv(RunDir(run).split(split)) for split in ("validation", "test")])["image_path"].tolist()
    reference = Predictor.load(run).predict_scores(paths)["subcategory"]
    agreement = {}
    for precision in ("f32", "bf16", "int8"):
        scores = Predictor.load(run, engine=EngineSpec("openvino", precision, calibration_size=64)).predict_scores(paths)
        agreement[precision] = float((scores["subcategory"].argmax(1) == reference.argmax(1)).mean())
        if precision == "f32":
            np.testing.assert_allclose(scores["subcategory"], reference, atol=1e-4)
    assert len(paths) >= 100
    assert agreement["f32"] == 1.0
    assert agreement["bf16"] >= 0.98 and agreement["int8"] >= 0.98, agreement
