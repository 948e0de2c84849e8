"""Throughput of the full model (ResNet-50 + message-passing head) against the machine's matmul rate.

The machine's limit is measured in the same run: a 4096x4096 ``tf.matmul`` (2 n^3 FLOP each) in
float32 and in the compute dtype of every mixed-precision policy the run uses (bfloat16 for
``mixed_bfloat16``). Each ``_fraction_of_matmul`` divides a setting's FLOP rate by the matmul rate
*in its own compute dtype* — a bfloat16 figure by the bfloat16 rate, a float32 one by the float32
rate — so a fraction says how close that setting comes to what its arithmetic can do (dividing a
bfloat16 model by the float32 rate gave "fractions" above 1). The model is counted as 8.2 GFLOP per
224 px image forward (ResNet-50's 4.1 GMAC; the head adds < 1%), 3x that for a training step
(forward + two backward products), scaled by (px / 224)^2 for other sizes. Training images/s come
from ``model.train_on_batch`` on random data after warm-up steps (so graph tracing and XLA
compilation are not counted), inference from ``model.predict_on_batch``. Each figure is taken as it
is (float32, no XLA), with ``jit_compile=True`` (``_xla``), with the ``mixed_bfloat16`` policy
(``_bf16``) and with both.

    python benchmarks/bench_model.py [--quick]

``run()`` is the entry point for ``benchmarks/run.py``; its key names are stable.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script from a checkout: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from figures import script_main  # noqa: E402

GFLOP_FORWARD_224 = 8.2
TRAINING_STEP_FACTOR = 3.0
# Kaggle Fashion Product Images: subCategory, articleType, season + usage values
NUM_CATEGORIES, NUM_SUBCATEGORIES, NUM_ATTRIBUTES = 45, 143, 12
VARIANTS = {"fp32": (False, "float32"), "xla": (True, "float32"), "bf16": (False, "mixed_bfloat16"),
            "bf16_xla": (True, "mixed_bfloat16")}


def gflop_per_image(image_px: int, *, training: bool) -> float:
    """Model GFLOP per image at ``image_px`` square: 8.2 at 224 px forward, x3 for a training step."""
    return GFLOP_FORWARD_224 * (image_px / 224) ** 2 * (TRAINING_STEP_FACTOR if training else 1.0)


def matmul_gflops(n: int = 4096, repeats: int = 10, dtype: str = "float32") -> float:
    """GFLOP/s of an n x n ``tf.matmul`` (best of ``repeats`` after one warm-up)."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal((n, n), seed=(0, 1)), dtype)
    b = tf.cast(tf.random.stateless_normal((n, n), seed=(0, 2)), dtype)
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.matmul(a, b).numpy()  # .numpy() waits for the result
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def compute_dtype(variant: str) -> str:
    """The dtype a variant's layers compute in (its Keras policy's): ``"bf16"`` -> ``"bfloat16"``."""
    import keras

    return keras.DTypePolicy(_settings(variant)[1]).compute_dtype


def matmul_key(dtype: str) -> str:
    """The figure holding the matmul rate in ``dtype``, which fractions of that dtype are taken of."""
    return f"matmul_{dtype}_gflops"


def _settings(variant: str) -> tuple[bool, str]:
    """(jit_compile, policy) of a variant name: a key of VARIANTS, or "<policy>[_xla]"."""
    if variant in VARIANTS:
        return VARIANTS[variant]
    return variant.endswith("_xla"), variant.removesuffix("_xla")


def _random_batch(batch_size: int, image_px: int, seed: int) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, image_px, image_px, 3)).astype(np.float32)
    labels = {
        "category": rng.integers(0, NUM_CATEGORIES, batch_size).astype(np.int32),
        "subcategory": rng.integers(0, NUM_SUBCATEGORIES, batch_size).astype(np.int32),
        "attributes": (rng.random((batch_size, NUM_ATTRIBUTES)) < 0.2).astype(np.float32),
    }
    return images, labels


def _compiled_model(image_px: int, *, jit_compile: bool, mixed_precision: str, seed: int):
    """The full model (ResNet-50, weights=None, message passing) compiled with the training losses."""
    import keras

    from fashion_hier.losses import WeightedBinaryCrossentropy, WeightedCategoricalCrossentropy
    from fashion_hier.models import build_model
    from fashion_hier.runtime import precision_policy

    keras.utils.set_random_seed(seed)
    with precision_policy(mixed_precision):
        model = build_model(NUM_CATEGORIES, NUM_SUBCATEGORIES, NUM_ATTRIBUTES, weights=None,
                            input_shape=(image_px, image_px, 3))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile,
                  loss={"category": WeightedCategoricalCrossentropy(), "subcategory": WeightedCategoricalCrossentropy(),
                        "attributes": WeightedBinaryCrossentropy()})
    return model


def _images_per_second(step, batch_size: int, *, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch_size * steps / (time.perf_counter() - start)


def training_images_per_second(image_px: int, batch_size: int, *, variant: str = "fp32", warmup: int = 2,
                               steps: int = 3, seed: int = 0) -> float:
    """Images/s of ``train_on_batch`` (forward, backward, Adam update) after ``warmup`` steps."""
    import keras

    jit_compile, mixed_precision = _settings(variant)
    model = _compiled_model(image_px, jit_compile=jit_compile, mixed_precision=mixed_precision, seed=seed)
    images, labels = _random_batch(batch_size, image_px, seed)
    rate = _images_per_second(lambda: model.train_on_batch(images, labels), batch_size, warmup=warmup, steps=steps)
    keras.backend.clear_session()
    return rate


def inference_images_per_second(image_px: int, batch_size: int, *, variant: str = "fp32", warmup: int = 1,
                                steps: int = 3, seed: int = 0) -> float:
    """Images/s of ``predict_on_batch`` (the compiled predict function) after ``warmup`` batches."""
    import keras

    jit_compile, mixed_precision = _settings(variant)
    model = _compiled_model(image_px, jit_compile=jit_compile, mixed_precision=mixed_precision, seed=seed)
    images, _ = _random_batch(batch_size, image_px, seed)
    rate = _images_per_second(lambda: model.predict_on_batch(images), batch_size, warmup=warmup, steps=steps)
    keras.backend.clear_session()
    return rate


def default_variant() -> str:
    """The variant that ``training.jit_compile/mixed_precision: auto`` picks on this device."""
    from fashion_hier.runtime import resolve_runtime

    jit_compile, policy = resolve_runtime("auto", "auto")
    names = {(jit, name): variant for variant, (jit, name) in VARIANTS.items()}
    return names.get((jit_compile, policy), f"{policy}{'_xla' if jit_compile else ''}")


def _plan(quick: bool) -> tuple[list, list]:
    """(training settings, inference settings) as (px, batch, variant); the quick plan: the default only."""
    if quick:
        return [(224, 16, default_variant())], [(224, 16, default_variant())]
    training = [(224, 16, v) for v in VARIANTS] + [(224, 32, "fp32"), (224, 32, "bf16"),
                                                   (128, 16, "fp32"), (128, 16, "bf16"),
                                                   (128, 32, "fp32"), (128, 32, "bf16")]
    inference = [(224, 32, v) for v in VARIANTS]
    return training, inference


def run(quick: bool = False, seed: int = 0) -> dict:
    """Matmul GFLOP/s per compute dtype (``matmul_<dtype>_gflops``), then images/s and fraction of the
    matmul rate in the setting's own compute dtype (``<setting>_fraction_of_matmul``) per setting."""
    steps = {"warmup": 1, "steps": 2} if quick else {"warmup": 1, "steps": 3}
    training, inference = _plan(quick)
    dtypes = {"float32"} | {compute_dtype(variant) for _, _, variant in training + inference}  # float32 always
    figures: dict[str, float | int | str] = {
        matmul_key(dtype): matmul_gflops(dtype=dtype, repeats=3 if quick else 10) for dtype in sorted(dtypes)
    }
    for kind, settings, measure in (("train", training, training_images_per_second),
                                    ("infer", inference, inference_images_per_second)):
        for image_px, batch_size, variant in settings:
            key = f"{kind}_{image_px}px_b{batch_size}_{variant}"
            rate = measure(image_px, batch_size, variant=variant, seed=seed, **steps)
            figures[f"{key}_images_per_s"] = rate
            gflops = rate * gflop_per_image(image_px, training=kind == "train")
            figures[f"{key}_fraction_of_matmul"] = gflops / figures[matmul_key(compute_dtype(variant))]
            print(f"  {key}: {rate:.2f} images/s", file=sys.stderr, flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    return script_main(run, __doc__.splitlines()[0], "224 px batch 16 with the device's default settings only, fewer steps", argv)


if __name__ == "__main__":
    sys.exit(main())
