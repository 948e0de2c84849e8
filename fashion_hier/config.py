"""Training configuration: plain nested dataclasses, read from and written to YAML, checked in one place.

The defaults are the paper's setup (Ferreira et al. 2018, Sec. 4): ResNet-50 with ImageNet
weights, the message-passing head, 224 px images, Adam lr 1e-3, batch 32, cross-entropy weighted
by inverse class frequency. Every value is checked whenever a config is built (from YAML, from a
``--set`` override, directly, or by ``dataclasses.replace``): its type against the field's hint and
its range or choices against the rule declared beside the field, so a typo is an error naming the key,
not a silently ignored setting. Checks that span several fields live in ``fashion_hier.config_checks``.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import yaml

from fashion_hier.atomic import atomic_write_text
from fashion_hier.config_checks import BACKBONE_NAMES, check_across_fields
from fashion_hier.data.images import DEFAULT_MAX_PIXELS
from fashion_hier.errors import ConfigError
from fashion_hier.labels import LabelColumns

__all__ = ["ConfigError", "DataConfig", "TrainConfig"]  # ConfigError: fashion_hier.errors owns it

SPLIT_TOLERANCE = 1e-6
Rule = Callable[[Any], "str | None"]  # None: the value is fine; else what is wrong, the message after "KEY: "


# ---- the rules, one per field that needs more than its type -----------------------------------

def _checked(default: Any, test: Callable[[Any], bool], expected: str) -> Any:
    """A field whose value must pass ``test``; else the error is "KEY: expected EXPECTED, got VALUE"."""
    return _ruled(default, lambda value: None if test(value) else f"expected {expected}, got {_shown(value)}")


def _ruled(default: Any, rule: Rule) -> Any:
    """A field whose value (already of its hinted type) ``rule`` checks; ``_checked_values`` applies it."""
    return field(default=default, metadata={"rule": rule})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _number(value) and value > 0


def _at_least(minimum: int) -> Callable[[Any], bool]:
    return lambda value: _number(value) and value >= minimum


def _optional(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or test(value)


def _folder_name(value: Any) -> bool:
    """One path component that stays inside its parent: ``name`` can never write outside ``output_dir``."""
    return (isinstance(value, str) and value.strip() == value and value not in ("", ".", "..")
            and not any(separator in value for separator in ("/", "\\", "\0")))


def _known_backbone(name: str) -> str | None:
    return None if name in BACKBONE_NAMES else f"unknown name {name!r}; known: {', '.join(BACKBONE_NAMES)}"


def _split_problem(fractions: tuple[float, ...]) -> str | None:
    shown = _shown(fractions)
    if not all(_number(f) and 0 <= f <= 1 for f in fractions):
        return f"expected [train, validation, test] fractions each in [0, 1], got {shown}"
    if abs(sum(fractions) - 1) > SPLIT_TOLERANCE:
        return f"the fractions must add up to 1, got {shown} (sum {sum(fractions):g}); e.g. [0.7, 0.15, 0.15]"
    if fractions[0] <= 0:
        return f"the train fraction must be > 0, got {shown}"
    return None


class _Section:
    """Base of the config dataclasses: every construction checks (and normalises) every value."""

    def __post_init__(self) -> None:
        values = {spec.name: getattr(self, spec.name) for spec in dataclasses.fields(self)}
        for key, value in _checked_values(type(self), values, _section_key(type(self))).items():
            setattr(self, key, value)


@dataclass
class DataConfig(_Section):
    """Where the catalogue is, which columns feed each level, how images are loaded and split."""

    labels_csv: str | None = None
    image_dir: str | None = None
    columns: LabelColumns = field(default_factory=LabelColumns)
    id_column: str = "id"
    image_size: tuple[int, int] = _checked((224, 224), lambda size: all(_at_least(1)(side) for side in size),
                                           "[height, width] in pixels, both >= 1 (e.g. [224, 224])")
    resize: Literal["stretch", "pad"] = "stretch"
    split: tuple[float, float, float] = _ruled((0.7, 0.15, 0.15), _split_problem)
    split_by: Literal["category", "subcategory"] = "subcategory"
    seed: int = _checked(0, _at_least(0), "an integer >= 0")
    cap_factor: float | None = _checked(None, _optional(_positive), "a number > 0, or null (no cap)")
    target_samples: int | None = _checked(None, _optional(_at_least(1)), "an integer >= 1, or null (keep every row)")
    verify_images: bool = False
    # pixel budget per image, checked from the header before decoding: larger images are skipped and reported
    # as unreadable by the training loaders and verify_images; every other reader (predict, feature and
    # activation caches, search, spark) applies the default, fashion_hier.data.images.DEFAULT_MAX_PIXELS
    max_pixels: int = _checked(DEFAULT_MAX_PIXELS, _at_least(1),
                               f"an integer >= 1, pixels per image (default {DEFAULT_MAX_PIXELS})")
    loader: Literal["sequence", "tfdata"] = "sequence"
    workers: int = _checked(1, _at_least(1), "an integer >= 1")
    use_multiprocessing: bool = False
    augment: bool = True
    hue: bool = False
    flip_features: bool = False  # head on cached features: also train on the horizontally flipped views' features


@dataclass
class ModelConfig(_Section):
    """Arguments of ``fashion_hier.models.build_model`` (besides the class counts)."""

    backbone: str = _ruled("resnet50", _known_backbone)
    weights: str | None = "imagenet"
    head: Literal["message_passing", "independent", "linear"] = "message_passing"
    units: int = _checked(1024, _at_least(1), "an integer >= 1 (the paper uses 1024)")
    l2: float = _checked(5e-4, _at_least(0), "a number >= 0 (the paper uses 0.0005)")
    dropout: float = _checked(0.3, lambda rate: _number(rate) and 0 <= rate < 1,
                              "a rate in [0, 1) (the paper uses 0.3)")
    trainable_backbone: bool = True
    top_down: bool = True
    bottom_up: bool = True
    input_norm: Literal["none", "batchnorm"] = "none"  # normalisation of the pooled features before the head
    # with training.cache_features: after the head, fine-tune the backbone layers *after* this layer (e.g.
    # conv4_block6_out, the input of ResNet-50's last stage) with the head, from a cache of its activations
    trainable_from: str | None = None


@dataclass
class LossConfig(_Section):
    """Class weighting of the three cross-entropies, computed from the training labels."""

    weighting: Literal["inverse_frequency", "none", "smoothed", "effective_number",
                       "logit_adjustment"] = "smoothed"  # measured: experiments/results/fpi/recipe.md
    # inverse_frequency (the paper's form): weight ~ count ** -power
    power: float = _checked(1.0, _at_least(0), "a number >= 0 (1 = inverse frequency, 0 = no weighting)")
    # inverse_frequency / smoothed: largest weight (mean over samples is 1)
    cap: float | None = _checked(None, _optional(_positive), "a number > 0, or null (no cap)")
    beta: float = 0.999            # effective_number (Cui et al. 2019)
    tau: float = 1.0               # logit_adjustment (Menon et al. 2021)
    label_smoothing: float = 0.0   # category and subcategory targets
    # attribute columns (data.columns.groups): focal loss (Lin et al. 2017), 0 = cross-entropy
    focal_gamma: float = _checked(0.0, _at_least(0), "a number >= 0 (0 = cross-entropy)")
    # the attribute level's share of the total loss (category and subcategory: 1)
    attribute_weight: float = _checked(1.0, _at_least(0), "a number >= 0 (1 = as much as each other level)")

    @property
    def level_weights(self) -> dict[str, float]:
        """Keras ``loss_weights``: each level's share of the total loss."""
        return {"category": 1.0, "subcategory": 1.0, "attributes": float(self.attribute_weight)}


@dataclass
class OptimizerConfig(_Section):
    name: Literal["adam", "adamw"] = "adam"
    learning_rate: float = _checked(1e-3, _positive, "a number > 0 (e.g. 0.001)")
    weight_decay: float = 0.004    # adamw only: decoupled decay, applied as lr * weight_decay per step (Keras default)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: int = 0         # linear warm-up from 0 (cosine schedule only)


@dataclass
class TrainingConfig(_Section):
    """The fit loop: batch size, epochs, callbacks, and the optional frozen-backbone first stage."""

    batch_size: int = _checked(32, _at_least(1), "an integer >= 1")
    epochs: int = _checked(10, _at_least(1), "an integer >= 1")
    early_stopping_patience: int | None = _checked(None, _optional(_at_least(0)),
                                                   "an integer >= 0, or null (no early stopping)")
    freeze_epochs: int = _checked(0, _at_least(0), "an integer >= 0")  # at most epochs: config_checks
    finetune_learning_rate: float = _checked(1e-4, _positive, "a number > 0 (e.g. 0.0001)")
    # model.trainable_from: epochs of the partial fine-tune (best on validation kept)
    finetune_epochs: int = _checked(3, _at_least(1), "an integer >= 1")
    # model.trainable_from: random crops of the cached maps, sides >= this fraction
    finetune_crop: float | None = _checked(None, _optional(lambda side: _number(side) and 0 < side <= 1),
                                           "a side fraction in (0, 1] (e.g. 0.7), or null (no crops)")
    tensorboard: bool = False
    jit_compile: bool | Literal["auto"] = "auto"
    run_eagerly: bool = False  # no graph tracing: slower steps, but a tiny run starts in seconds (tests, debugging)
    # auto: see fashion_hier.runtime; YAML's bare `off` (false) is read as "off"
    mixed_precision: Literal["auto", "off", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    distribution: Literal["none", "mirrored", "multi_worker"] = "none"
    # weight initialisation and dropout; None: data.seed (which fixes the split)
    seed: int | None = _checked(None, _optional(_at_least(0)), "an integer >= 0, or null (use data.seed)")
    # frozen backbone only: cache its pooled features once (and the mirrored views' with data.flip_features)
    # and train the head on them: the same run directory in seconds per epoch instead of minutes
    cache_features: bool = False
    # what runs the frozen backbone over the catalogue for those caches (fashion_hier.engine): OpenVINO runs
    # the same network faster on a CPU (bf16: 2.4x on AVX-512 BF16); each engine's caches are kept apart;
    # auto: OpenVINO where the openvino extra is installed, else Keras float32. int8 is NNCF post-training
    # quantization calibrated on a seeded sample of the training split's photos (never validation or test)
    extraction_engine: Literal["keras", "openvino", "auto"] = "keras"
    extraction_precision: Literal["f32", "bf16", "int8"] = "f32"
    # int8 only: how many training photos NNCF collects the activation ranges on (its own default subset is 300)
    extraction_calibration_size: int = _checked(128, _at_least(1), "an integer >= 1")
    # at the end: fit one temperature per level on the validation split (fashion_hier.calibrate), stored in
    # model.keras, so that predict answers calibrated scores
    calibrate: bool = False


@dataclass
class TrainConfig(_Section):
    """Everything ``fashion_hier.train.train`` needs; the run directory is ``output_dir/name``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output_dir: str = "runs"
    name: str = _checked("run", _folder_name,
                         "one folder name inside output_dir (no '/', '\\' or '..'; e.g. resnet50_run1)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_across_fields(self)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "TrainConfig":
        """Build from nested plain data; unknown keys, wrongly typed values and values that cannot work are errors."""
        return _build(cls, data or {}, "")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist; write one with TrainConfig().to_yaml(path)")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigError(_yaml_error_message(path, error)) from error
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (data, model, ...), got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from error

    def with_overrides(self, overrides: Sequence[str]) -> "TrainConfig":
        """A copy with ``"section.key=value"`` overrides applied; values are read as YAML (``3``, ``null``, ``[64, 64]``)."""
        data = self.to_dict()
        for override in overrides:
            dotted, sep, text = override.partition("=")
            if not sep or not dotted.strip():
                raise ConfigError(f"override {override!r} is not key=value (e.g. training.epochs=3)")
            keys = dotted.strip().split(".")
            node = data
            for depth, key in enumerate(keys[:-1]):
                if not isinstance(node.get(key), dict):
                    where = ".".join(keys[: depth + 1])
                    raise ConfigError(f"override {override!r}: {where!r} is not a config section "
                                   f"(sections: {', '.join(k for k, v in node.items() if isinstance(v, dict))})")
                node = node[key]
            try:
                node[keys[-1]] = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise ConfigError(f"override {override!r}: the value is not valid YAML; quote it or fix the "
                                  f"brackets (e.g. data.image_size=[64,64])") from error
        return type(self).from_dict(data)

    # ---- output ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Nested plain data (lists, not tuples), ready for YAML."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path


# ---- dict <-> dataclass, and the one place values are checked ---------------------------------

def _build(cls: type, data: Any, where: str) -> Any:
    """A ``cls`` instance from a mapping at key ``where``: unknown keys and misfit values are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of keys, got {data!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in known]
    if unknown:
        raise ConfigError(f"unknown config key{'s' if len(unknown) > 1 else ''} "
                       f"{', '.join(repr(_join(where, k)) for k in unknown)}; known keys"
                       f"{' in ' + repr(where) if where else ''}: {', '.join(known)}")
    try:  # checked here for dataclasses of other modules (LabelColumns); a _Section checks again, a no-op
        return cls(**_checked_values(cls, data, where))
    except ConfigError:
        raise
    except ValueError as error:  # a dataclass's own check (e.g. LabelColumns), placed at its key
        raise ConfigError(f"{where or 'config'}: {error}") from error


def _checked_values(cls: type, values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``values`` (of fields of ``cls``) read by each field's type hint, then passed through its rule, if any.

    The first value that does not fit raises ``ConfigError``: "KEY: what is expected, got VALUE".
    """
    hints, checked = _hints(cls), {}
    for spec in dataclasses.fields(cls):
        if spec.name in values:
            name = _join(where, spec.name)
            value = _check_value(values[spec.name], hints[spec.name], name)
            problem = spec.metadata["rule"](value) if "rule" in spec.metadata else None
            if problem:
                raise ConfigError(f"{name}: {problem}")
            checked[spec.name] = value
    return checked


def _check_value(value: Any, hint: Any, name: str) -> Any:
    """``value`` if it fits ``hint`` (ints accepted for floats; lists for tuples), else a clear error."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else _build(hint, value, name)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _check_value(value, option, name)
            except ConfigError:
                continue
        raise ConfigError(f"{name}: expected {_describe(hint)}, got {value!r}")
    if origin is Literal:
        if value is False and "off" in args:
            value = "off"  # YAML 1.1 reads a bare `off` as false
        if any(value == choice and type(value) is type(choice) for choice in args):
            return value
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(map(repr, args))}")
    if origin is tuple:
        items = [args[0]] * len(value) if args[-1] is Ellipsis and isinstance(value, (list, tuple)) else list(args)
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise ConfigError(f"{name}: expected a list ({_describe(hint)}), got {value!r}")
        return tuple(_check_value(v, h, f"{name}[{i}]") for i, (v, h) in enumerate(zip(value, items)))
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"{name}: expected null, got {value!r}")
    if hint is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)  # PyYAML reads 1e-3 (no dot) as a string
        except ValueError:
            pass
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{name}: expected {_describe(hint)}, got {value!r} ({type(value).__name__})")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _section_key(cls: type) -> str:
    """The key a section sits under in ``TrainConfig`` (``training``), so that errors name ``training.epochs``."""
    return next((key for key, hint in _hints(TrainConfig).items() if hint is cls), "")


def _shown(value: Any) -> str:
    return repr(_plain(value))  # lists, as in the YAML file


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is not None:
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _yaml_error_message(path: str | os.PathLike, error: Exception) -> str:
    """One line for a YAML syntax (or text encoding) error: the file, the line and column (1-based), and the problem."""
    if isinstance(error, UnicodeDecodeError):
        line = error.object[:error.start].count(b"\n") + 1
        return f"{os.fspath(path)} line {line}: not UTF-8 text; save the config file as UTF-8"
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return (f"{os.fspath(path)}{where}: YAML syntax error: {detail}; check the indentation, colons and quotes "
            f"there")


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE [KEY=VALUE ...]`` (repeatable), the config overrides every command accepts."""
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. --set training.epochs=3 model.head=independent "
                             "(values read as YAML)")


def training_seed(config: "TrainConfig") -> int:
    """The seed of weight initialisation and dropout: ``training.seed``, else ``data.seed``.

    Separate from the split's seed so that repeated runs can vary the initialisation on one split.
    """
    return config.data.seed if config.training.seed is None else config.training.seed
