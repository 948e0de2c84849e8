"""Export a run for serving without this package: a TensorFlow SavedModel that takes JPEG/PNG bytes, and TFLite.

The SavedModel's ``serving_default`` signature takes a batch of encoded images (``image_bytes``, a
string tensor), decodes and resizes them inside the graph with the in-graph face of the task's
``ImagePreprocessor`` (``fashion_hier.preprocessing``: the resize geometry ``predict_catalog`` loads files
with, its measured differences in that module's docstring), runs the model and returns the category and
subcategory names (constant string tensors inside the graph) with their scores, the attribute scores
and the attributes at or above their thresholds; with attribute columns (``LabelSpace.grouped``), one answer
per group, as the decoded table's columns (``serving_outputs`` names them). TensorFlow Serving answers it
with no Python. TFLite takes pixels (the string ops have no TFLite kernels): ``(1, height, width, 3)``
float32 RGB 0..255, and returns the three score arrays (``export_tflite`` says how to read groups from them).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from fashion_hier.decoding import SCORE_SUFFIX
from fashion_hier.engine import float32_copy  # TFLite cannot lower bfloat16 either
from fashion_hier.labels import LEVELS
from fashion_hier.predict import Predictor

FORMATS = ("savedmodel", "tflite", "openvino")
OPENVINO_TASK_FILE = "task.json"  # beside an OpenVINO IR: what turns its three score arrays into names
QUANTIZATIONS = ("float16", "dynamic", "none")
SERVING_INPUT = "image_bytes"
LEVEL_OUTPUTS = ("category", "category_score", "subcategory", "subcategory_score",
                 "category_scores", "subcategory_scores", "attribute_scores", "attribute_names")
FLAT_OUTPUTS = (*LEVEL_OUTPUTS, "attributes")  # the flat tag set: "|"-joined thresholded attributes as well
GROUP_SCORES_SUFFIX = "_scores"  # a multi group's (N, k) scores of all its values: tags -> tags_scores
GROUP_VALUES_SUFFIX = "_values"  # ... and the (N, k) value names they belong to: tags -> tags_values
NOT_APPLICABLE = ""  # a group's answer where it does not apply to the predicted category (decoding's None)


def serving_outputs(label_space) -> tuple[str, ...]:
    """The output names of the ``serving_default`` signature for ``label_space`` (one owner of the contract).

    Flat tag set: ``FLAT_OUTPUTS``. Attribute columns: ``LEVEL_OUTPUTS`` and, per group, the decoded
    table's columns ``<group>`` and ``<group>_score`` (``decoding.prediction_columns``), plus for a
    ``multi`` group ``<group>_scores`` and ``<group>_values``. Group names are used as they are: a
    SavedModel takes any string as an output key (spaces, ``=``, non-ASCII alike), so a client reads
    the same names as the CSV. Raises ``ValueError`` when a group's names clash with another output.
    """
    if not label_space.grouped:
        return FLAT_OUTPUTS
    names = list(LEVEL_OUTPUTS)
    for group in label_space.groups:
        names += _group_output_names(group)
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise ValueError(f"attribute groups {[g.name for g in label_space.groups]} give the serving outputs "
                         f"{clashes} twice (a group's outputs are <group>, <group>{SCORE_SUFFIX} and, for multi "
                         f"groups, <group>{GROUP_SCORES_SUFFIX}, <group>{GROUP_VALUES_SUFFIX}; fixed outputs: "
                         f"{list(LEVEL_OUTPUTS)}); rename a group in data.columns.groups and retrain")
    return tuple(names)


def _group_output_names(group) -> tuple[str, ...]:
    names = (group.name, group.name + SCORE_SUFFIX)
    return names if group.kind == "single" else (*names, group.name + GROUP_SCORES_SUFFIX,
                                                 group.name + GROUP_VALUES_SUFFIX)


def export_savedmodel(model_or_run, out_dir: str | os.PathLike, *, consistent: bool = True) -> Path:
    """Write a SavedModel whose ``serving_default`` maps encoded images to names and scores; returns ``out_dir``.

    ``model_or_run``: a ``Predictor``, a run directory or a ``.keras`` file. ``consistent`` picks the
    joint best (category, subcategory) pair, as ``predict --consistent``. Outputs (batch first):
    ``category``, ``category_score``, ``subcategory``, ``subcategory_score`` (names and scores),
    ``category_scores`` (N, C), ``subcategory_scores`` (N, S), ``attribute_scores`` (N, A),
    ``attribute_names`` (N, A); the flat tag set adds ``attributes`` ("|"-joined, best first, thresholded).

    With attribute columns, per group instead of ``attributes``, as ``decoding.group_columns`` decodes it:

    - ``single``: ``<group>`` (string, the arg-max value) and ``<group>_score`` (float32, its probability);
    - ``multi``: ``<group>`` (its values at or above their thresholds, best first, "|"-joined, "" when
      none is) and ``<group>_score`` (their scores likewise, ``"%.4f"``, as in the CSV); ``<group>_scores``
      (N, k) float32, every value's score in the order of ``<group>_values`` (N, k) string.

    Where a group does not apply to the predicted category (the answer the decoded table leaves empty),
    its string outputs are "" and its float outputs NaN. ``min_confidence`` is not applied (every row
    gets its names; compare the scores with it), and applicability follows the predicted category.
    """
    import keras
    import tensorflow as tf

    from fashion_hier.atomic import atomic_directory

    predictor = _predictor(model_or_run)
    space, model = predictor.label_space, predictor.model
    outputs = serving_outputs(space)  # a clash of group names fails here, before anything is traced
    category_names = tf.constant(space.categories)
    subcategory_names = tf.constant(space.subcategories)
    attribute_names = tf.constant(space.attributes)
    parent_index = tf.constant(np.asarray(space.parent_index, dtype=np.int32))
    thresholds = tf.constant(predictor.thresholds.astype(np.float32))
    preprocessor = model.preprocessor.replace(image_size=predictor.image_size, resize=predictor.resize)

    def serve(image_bytes):
        scores = model(preprocessor.decode_and_resize(image_bytes), training=False)
        category_scores, subcategory_scores, attribute_scores = (
            tf.cast(scores[level], tf.float32) for level in LEVELS)
        if consistent:
            subcategory = tf.argmax(tf.gather(category_scores, parent_index, axis=1) * subcategory_scores,
                                    axis=1, output_type=tf.int32)
            category = tf.gather(parent_index, subcategory)
        else:
            category = tf.argmax(category_scores, axis=1, output_type=tf.int32)
            subcategory = tf.argmax(subcategory_scores, axis=1, output_type=tf.int32)
        batch = tf.shape(image_bytes)[0]
        answers = {
            "category": tf.gather(category_names, category),
            "category_score": tf.gather(category_scores, category, batch_dims=1),
            "subcategory": tf.gather(subcategory_names, subcategory),
            "subcategory_score": tf.gather(subcategory_scores, subcategory, batch_dims=1),
            "category_scores": category_scores,
            "subcategory_scores": subcategory_scores,
            "attribute_scores": attribute_scores,
            "attribute_names": tf.tile(attribute_names[None], [batch, 1]),
        }
        if space.grouped:
            answers.update(_group_answers(attribute_scores, category, space, thresholds))
        else:
            answers["attributes"] = _thresholded(attribute_scores, thresholds, attribute_names)[0]
        assert sorted(answers) == sorted(outputs), (sorted(answers), sorted(outputs))
        return answers

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    with atomic_directory(out_dir) as target:
        archive.write_out(str(target), verbose=False)
    return Path(out_dir)


def _group_answers(attribute_scores, category, space, thresholds) -> dict:
    """``decoding.group_columns`` in tensors: per group its answer and score per row, "" / NaN where the
    group does not apply to the row's predicted ``category`` (indices), the scores limited to the values that
    category can have (``decoding.category_scores``)."""
    import tensorflow as tf

    applies = tf.gather(tf.constant(space.applicability()), category)  # (N, G)
    allowed = tf.gather(tf.constant(space.value_mask()), category)  # (N, A): decoding.category_scores
    limited = tf.where(allowed, attribute_scores, tf.zeros_like(attribute_scores))
    nan = tf.constant(float("nan"), tf.float32)
    answers = {}
    for j, group in enumerate(space.groups):
        block, values, here = limited[:, group.start:group.stop], tf.constant(group.values), applies[:, j]
        if group.kind == "single":
            block = tf.math.divide_no_nan(block, tf.reduce_sum(block, axis=1, keepdims=True))
            best = tf.argmax(block, axis=1, output_type=tf.int32)
            answers[group.name] = tf.where(here, tf.gather(values, best), NOT_APPLICABLE)
            answers[group.name + SCORE_SUFFIX] = tf.where(here, tf.gather(block, best, batch_dims=1), nan)
        else:
            chosen, chosen_scores = _thresholded(block, thresholds[group.start:group.stop], values)
            answers[group.name] = tf.where(here, chosen, NOT_APPLICABLE)
            answers[group.name + SCORE_SUFFIX] = tf.where(here, chosen_scores, NOT_APPLICABLE)
            answers[group.name + GROUP_SCORES_SUFFIX] = tf.where(here[:, None], block, nan)
            answers[group.name + GROUP_VALUES_SUFFIX] = tf.tile(values[None], [tf.shape(block)[0], 1])
    return answers


def _thresholded(scores, thresholds, names):
    """``decoding.attribute_columns`` in tensors: per row the names at or above their thresholds, best first,
    "|"-joined, and their scores likewise (``"%.4f"``, the same digits as Python's formatting)."""
    import tensorflow as tf

    order = tf.argsort(-scores, axis=1, stable=True)
    sorted_scores = tf.gather(scores, order, batch_dims=1)
    chosen = sorted_scores >= tf.gather(thresholds, order)

    def joined(strings):
        return tf.strings.reduce_join(tf.ragged.boolean_mask(strings, chosen), axis=1, separator="|")

    return joined(tf.gather(names, order)), joined(tf.strings.as_string(sorted_scores, precision=4))


def export_tflite(model_or_run, out_path: str | os.PathLike, *, quantization: str = "float16") -> Path:
    """Write a ``.tflite`` file of the model on pixels; ``quantization``: float16, dynamic (int8 weights) or none.

    Input ``(1, height, width, 3)`` float32 RGB 0..255; outputs the three score arrays. The label
    names and thresholds are not in the file: ship the run's label space (``labels.json``) and
    ``thresholds.json`` beside it.

    With attribute columns, ``attributes`` holds the groups side by side: ``labels.json`` lists them
    under ``"groups"`` in axis order, so group g's values sit at ``start = sum of the earlier groups'
    len(values)`` up to ``start + len(values)`` (``"attributes"`` names the same axis ``group=value``;
    ``LabelSpace.groups[g].slice`` in Python). A ``single`` slice is already a softmax: its arg-max is
    the answer; a ``multi`` slice holds sigmoids, answered where they reach their thresholds. A group
    answers only for the categories in its ``"applies_to"``, as ``decoding.group_columns`` does.
    """
    import keras
    import tensorflow as tf

    from fashion_hier.atomic import atomic_path

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    predictor = _predictor(model_or_run)
    model = float32_copy(predictor.model)
    with tempfile.TemporaryDirectory(prefix="fashion_hier_tflite_") as scratch:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda images: {level: tf.cast(score, tf.float32) for level, score in
                                                      model(images, training=False).items()},
                             input_signature=[tf.TensorSpec((1, *predictor.image_size, 3), tf.float32, name="image")])
        archive.write_out(scratch, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
        if quantization != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        flatbuffer = converter.convert()
    with atomic_path(out_path) as target:
        Path(target).write_bytes(flatbuffer)
    return Path(out_path)


def tflite_scores(tflite_path: str | os.PathLike, images: np.ndarray) -> dict[str, np.ndarray]:
    """Scores of a ``.tflite`` export on an ``(N, h, w, 3)`` RGB 0..255 array, one image at a time."""
    import tensorflow as tf

    runner = tf.lite.Interpreter(model_path=str(tflite_path)).get_signature_runner()
    rows = [runner(image=np.asarray(image[None], np.float32)) for image in images]
    return {level: np.concatenate([row[level] for row in rows]) for level in rows[0]} if rows else {}


def export_openvino(model_or_run, out_dir: str | os.PathLike, *, precision: str = "f32") -> Path:
    """Write the task as an OpenVINO IR (``model.xml`` + ``model.bin``) and ``task.json`` into ``out_dir``.

    The IR is the one ``--engine openvino`` runs (``fashion_hier.engine``): input ``image`` (N, height, width, 3)
    float32 RGB 0..255, outputs the three score arrays by level name. ``precision`` int8 writes the NNCF-quantized
    model (calibrated on the run's training photos); bf16 is a run-time hint (``INFERENCE_PRECISION_HINT``), so
    its IR is the f32 one and ``task.json`` says to ask for bf16. ``task.json`` holds the label space, the
    thresholds, the image size and resize policy: read the scores as ``export_tflite``'s docstring says.
    """
    from fashion_hier.atomic import atomic_write_text
    from fashion_hier.engine import IR_FILE, save_ir
    from fashion_hier.jsonio import to_json_data

    predictor = model_or_run if isinstance(model_or_run, Predictor) else Predictor.load(
        model_or_run, engine="openvino", precision=precision)
    if predictor.engine.engine != "openvino":
        predictor = Predictor(predictor.model, engine="openvino", precision=precision)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".openvino_", dir=out_dir) as scratch:
        save_ir(predictor.forward.ir, Path(scratch) / "ir")
        for name in (Path(IR_FILE).with_suffix(".bin").name, IR_FILE):  # the .xml last: it is only there with its weights
            os.replace(Path(scratch) / "ir" / name, out_dir / name)
    task = predictor.model
    atomic_write_text(out_dir / OPENVINO_TASK_FILE, json.dumps(to_json_data({
        "precision": predictor.engine.precision,
        "inference_precision_hint": "bf16" if predictor.engine.precision == "bf16" else "f32",
        "input": {"name": "image", "image_size": list(task.image_size), "resize": task.resize,
                  "pixels": "RGB float32 0..255"},
        "outputs": ["category", "subcategory", "attributes"],
        "label_space": task.label_space.to_dict(),
        "thresholds": [float(t) for t in task.thresholds],
    }), indent=2) + "\n")
    return out_dir


def _predictor(model_or_run) -> Predictor:
    return model_or_run if isinstance(model_or_run, Predictor) else Predictor.load(model_or_run)
