"""Run a Keras image model's forward pass through an inference engine: Keras itself, or OpenVINO (f32, bf16, int8).

Everything that pushes photos through a network (``Predictor`` and so ``predict``, ``evaluate``, Spark; the
search ``Embedder``) asks ``compile_engine`` for an object with Keras's ``predict_on_batch``. With
``EngineSpec("openvino", precision)`` the model is converted once (``openvino.convert_model`` on the Keras
forward pass as a TensorFlow function, so decoding, thresholds and calibration stay the task's own), int8
weights and activations come from NNCF post-training quantization on calibration photos, and the IR is
cached under ``cache_dir`` keyed by the model's digest and the precision. ``f32`` answers as Keras does (to
float rounding: the CPU plugin's default on bf16-capable CPUs is bf16, so f32 is asked for explicitly).

OpenVINO is an extra (``pip install 'fashion-hier[openvino]'``); Keras stays the default.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

ENGINES = ("keras", "openvino")
PRECISIONS = ("f32", "bf16", "int8")
OPENVINO_INSTALL = "pip install 'fashion-hier[openvino]'"
IR_FILE = "model.xml"  # in each cache folder, beside its model.bin
DEFAULT_CALIBRATION_SIZE = 128  # photos NNCF collects int8 ranges on (its own default subset is 300)


@dataclass(frozen=True)
class EngineSpec:
    """Which engine runs the forward pass, at which precision.

    ``threads``: OpenVINO's ``INFERENCE_NUM_THREADS`` (None: all cores; a Spark worker passes its share).
    ``calibration_size``: training photos int8 quantization calibrates on.
    """

    engine: str = "keras"
    precision: str = "f32"
    threads: int | None = None
    calibration_size: int = DEFAULT_CALIBRATION_SIZE

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.engine == "keras" and self.precision != "f32":
            raise ValueError(f"precision {self.precision!r} needs engine 'openvino' (Keras runs f32 here)")
        for name in ("threads", "calibration_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer{' or None' if name == 'threads' else ''}, "
                                 f"got {value!r}")

    @property
    def is_keras(self) -> bool:
        return self.engine == "keras"

    def describe(self) -> str:
        return "keras f32" if self.is_keras else f"openvino {self.precision}"


def engine_spec(engine: "EngineSpec | str | None" = None, precision: str | None = None, **settings: Any) -> EngineSpec:
    """An ``EngineSpec`` from one (``"openvino"``, ``EngineSpec``, None: Keras) and an optional precision."""
    if isinstance(engine, EngineSpec):
        if precision is not None and precision != engine.precision:
            raise ValueError(f"precision {precision!r} given besides {engine}; put it in the EngineSpec")
        return engine
    return EngineSpec(engine or "keras", precision or "f32", **settings)


def extraction_engine(config: Any) -> EngineSpec:
    """The engine a ``TrainConfig``'s ``training.extraction_engine``/``extraction_precision`` ask for: what runs
    the frozen backbone over a catalogue to fill the feature and activation caches.

    ``"auto"``: OpenVINO at ``extraction_precision`` where the ``openvino`` extra is installed, else Keras
    float32 (the caches record which, so the two are never mixed).
    """
    training = config.training
    engine, precision = training.extraction_engine, training.extraction_precision
    if engine == "auto":
        try:
            check_available(EngineSpec("openvino", precision))
        except ImportError:
            return EngineSpec("keras", "f32")
        engine = "openvino"
    return EngineSpec(engine, precision, calibration_size=training.extraction_calibration_size)


def extraction_calibration_paths(config: Any, catalog: Any = None) -> list[str] | None:
    """The photos int8 extraction calibrates on: the training split's (as ``train`` splits the catalogue), so
    validation and test photos never set a quantization range; None unless ``extraction_engine(config)`` is int8.
    ``catalog``: the config's catalogue when the caller has already read it."""
    if extraction_engine(config).precision != "int8":
        return None
    from fashion_hier.data.catalog import config_splits
    from fashion_hier.labels import IMAGE_PATH

    return config_splits(config, catalog).train[IMAGE_PATH].astype(str).tolist()


def extraction_identity(spec: EngineSpec, calibration_paths: Sequence[str] | None = None) -> str:
    """What a cache records as the engine that filled it: ``spec.describe()``, and for int8 the photos it was
    calibrated on, so caches quantized on other photos are kept apart."""
    if spec.precision != "int8":
        return spec.describe()
    if not calibration_paths:
        raise ValueError("int8 extraction needs calibration photos (the training split's); none were given")
    sample = calibration_sample(calibration_paths, spec.calibration_size)
    return f"{spec.describe()} calibrated on {len(sample)} photos {paths_key(sample)}"


def calibration_sample(paths: Sequence[str], count: int) -> list[str]:
    """Up to ``count`` of ``paths``, a seeded sample in their order: the same photos every time."""
    return [str(paths[i]) for i in np.sort(np.random.default_rng(0).permutation(len(paths))[:count])]


def photo_inputs(image_size: tuple[int, int], resize: str) -> Callable[[list[str]], np.ndarray]:
    """Calibration inputs that are the photos themselves, read at the model's size; unreadable ones are logged
    and skipped."""
    from fashion_hier.data.images import read_images

    def read(paths: list[str]) -> np.ndarray:
        batch = read_images(paths, tuple(image_size), resize=resize)
        for path, reason in batch.failed:
            logger.warning("calibration: skipped unreadable image %s: %s", path, reason)
        return batch.images

    return read


def paths_key(paths: Sequence[str] | None) -> str:
    """A short digest naming a list of calibration photos in a cache key."""
    return "" if paths is None else hashlib.sha256("\n".join(str(p) for p in paths).encode()).hexdigest()[:16]


def check_available(spec: EngineSpec) -> None:
    """One line naming the extra to install when ``spec`` needs a package that is missing."""
    if spec.is_keras:
        return
    needed = ["openvino"] + (["nncf"] if spec.precision == "int8" else [])
    for package in needed:
        try:
            __import__(package)
        except ImportError:
            raise ImportError(f"engine 'openvino'{' at int8' if package == 'nncf' else ''} needs the {package} "
                              f"package: {OPENVINO_INSTALL}") from None


class OpenVINOModel:
    """A Keras model's forward pass compiled by OpenVINO for this CPU: ``predict_on_batch`` answers as Keras does
    (a dict keyed by output name for a dict-output model, else one array)."""

    def __init__(self, ir, compiled, output_names: list[str] | None, spec: EngineSpec):
        self.ir, self.compiled, self.output_names, self.spec = ir, compiled, output_names, spec
        self._request = compiled.create_infer_request()

    def predict_on_batch(self, images: np.ndarray):
        results = self._request.infer([np.ascontiguousarray(images, dtype=np.float32)])
        if self.output_names is None:
            return np.array(results[self.compiled.output(0)])
        return {name: np.array(results[self.compiled.output(name)]) for name in self.output_names}


def compile_engine(model, spec: EngineSpec | str | None = None, *, cache_dir: str | os.PathLike | None = None,
                   calibration_paths: Sequence[str] | None = None,
                   inputs: Callable[[list[str]], np.ndarray] | None = None):
    """``model`` itself for Keras, else an ``OpenVINOModel`` of it.

    ``model``: a Keras model taking (N, ...) float inputs. ``cache_dir``: where the converted IR is kept (a
    ``<digest>-<precision>/`` folder), so a run converts once; None converts every time. int8 calibrates on
    ``inputs(sample)``, the model's inputs for a seeded sample of ``calibration_paths`` (``photo_inputs``, or a
    cache's maps of those photos; read only when the IR is not cached), which the cache key names.
    """
    spec = engine_spec(spec)
    if spec.is_keras:
        return model
    check_available(spec)
    import openvino as ov

    output_names = _output_names(model)
    ir = None
    cached = None
    if cache_dir is not None:
        key = model_digest(model)
        if spec.precision == "int8":
            key += f"-{paths_key(calibration_paths)}-{spec.calibration_size}"
        cached = Path(cache_dir) / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}-{_ir_precision(spec)}"
        if (cached / IR_FILE).is_file():
            ir = ov.Core().read_model(cached / IR_FILE)
            logger.info("OpenVINO %s model from the cache %s", spec.precision, cached)
    if ir is None:
        ir = convert(model)
        if spec.precision == "int8":
            if calibration_paths is None or inputs is None:
                raise ValueError("precision 'int8' needs calibration photos: load a run directory (its training "
                                 "photos are used) or pass calibration images")
            ir = quantize(ir, inputs(calibration_sample(calibration_paths, spec.calibration_size)))
        if cached is not None:
            save_ir(ir, cached)
    properties = {"INFERENCE_PRECISION_HINT": "bf16" if spec.precision == "bf16" else "f32"}
    if spec.threads is not None:
        properties["INFERENCE_NUM_THREADS"] = spec.threads
    return OpenVINOModel(ir, ov.Core().compile_model(ir, "CPU", properties), output_names, spec)


def limit_keras_threads(spec: EngineSpec) -> None:
    """A Keras engine's ``threads`` as TensorFlow's intra-op pool of this process; call it before TensorFlow
    starts (a Spark worker does, before loading its model). OpenVINO takes ``threads`` when it compiles."""
    if not spec.is_keras or spec.threads is None:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran something in this process: its pools are fixed
        logger.warning("TensorFlow already started in process %d; it keeps its own thread count, not %d",
                       os.getpid(), spec.threads)


def convert(model):
    """``model``'s inference forward pass as an OpenVINO model (dynamic batch; outputs named as Keras names them).

    A model trained under a mixed policy (``mixed_bfloat16``: ``training.mixed_precision: auto`` on a bf16 CPU)
    is converted as its float32 copy: OpenVINO's TensorFlow frontend has no rule for bfloat16 constants, and
    the weights are float32 anyway; ``precision`` decides the arithmetic.
    """
    import openvino as ov
    import tensorflow as tf

    model = float32_copy(model)
    signature = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image")
    function = tf.function(lambda images: model(images, training=False)).get_concrete_function(signature)
    return ov.convert_model(function)


def float32_copy(model):
    """``model`` itself when every layer computes in float32, else the same network rebuilt with float32 policies
    and given its weights (which a mixed policy keeps in float32). For the converters that cannot lower bfloat16
    or float16: OpenVINO's TensorFlow frontend and TFLite (``fashion_hier.export``)."""
    import keras

    if all(layer.dtype_policy.compute_dtype == "float32" for layer in _layers(model)):
        return model  # the common case, without serializing the network
    config = keras.saving.serialize_keras_object(model)
    _to_float32(config)
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def _layers(model):
    """Every layer of ``model``, nested models' included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def _to_float32(node) -> bool:
    """Set every non-float32 ``DTypePolicy`` in a serialized Keras object to float32; whether any was."""
    changed = False
    if isinstance(node, dict):
        if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(node.get("config"), dict) \
                and node["config"].get("name") not in (None, "float32"):
            node["config"]["name"], changed = "float32", True
        for value in node.values():
            changed = _to_float32(value) or changed
    elif isinstance(node, list):
        for value in node:
            changed = _to_float32(value) or changed
    return changed


def quantize(ir, images: np.ndarray):
    """int8 through NNCF post-training quantization, ranges collected on ``images`` one photo at a time."""
    import contextlib
    import io

    import nncf

    images = np.asarray(images, np.float32)
    if len(images) == 0:
        raise ValueError("int8 quantization needs at least one calibration photo; none could be read")
    logger.info("int8: NNCF post-training quantization calibrated on %d photos", len(images))
    dataset = nncf.Dataset([image[None] for image in images])
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws rich progress bars on stdout; a library prints nothing
        return nncf.quantize(ir, dataset, subset_size=len(images))


def save_ir(ir, folder: Path) -> None:
    """The IR as ``folder/model.xml`` + ``model.bin``, the folder written atomically (both files or neither)."""
    import openvino as ov

    from fashion_hier.atomic import atomic_directory

    with atomic_directory(folder) as staging:
        ov.save_model(ir, staging / IR_FILE, compress_to_fp16=False)  # f32 weights: the f32 engine must equal Keras


# names Keras numbers per process when a network is built without naming them (an input layer, a symbolic tensor):
# the same network built twice differs only in them, so the digest reads them without their numbers
_PROCESS_NUMBERED_NAMES = re.compile(r"\b(input_layer|keras_tensor)_?\d*(CLONE)?\b")


def model_digest(model) -> str:
    """sha256 of a Keras model's configuration and weights: the same model gives the same digest, also when
    it is built again in one process (``_PROCESS_NUMBERED_NAMES``)."""
    config = json.dumps(model.get_config(), sort_keys=True, default=str)
    digest = hashlib.sha256(_PROCESS_NUMBERED_NAMES.sub(r"\1", config).encode())
    for weight in model.weights:
        digest.update(weight.path.encode())
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    return digest.hexdigest()


def _output_names(model) -> list[str] | None:
    """The output names Keras keys ``predict_on_batch``'s dict by, or None for a model with one plain output."""
    outputs = model.outputs
    if isinstance(getattr(model, "_outputs_struct", None), dict):
        return list(model.output_names)
    return None if len(outputs) == 1 else list(model.output_names)


def _ir_precision(spec: EngineSpec) -> str:
    """int8 IRs differ from the float one; f32 and bf16 share one IR (bf16 is a compile-time hint)."""
    return "int8" if spec.precision == "int8" else "f32"
