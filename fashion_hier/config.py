"""Training configuration: plain nested dataclasses, read from and written to YAML.

The defaults are the paper's setup (Ferreira et al. 2018, Sec. 4): ResNet-50 with ImageNet
weights, the message-passing head, 224 px images, Adam lr 1e-3, batch 32, cross-entropy weighted
by inverse class frequency. Every value is checked on load, so a typo in a YAML file or a
``--set`` override is an error naming the key, not a silently ignored setting.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from fashion_hier.config_checks import validate_config, yaml_error_message
from fashion_hier.data.images import DEFAULT_MAX_PIXELS
from fashion_hier.errors import ConfigError
from fashion_hier.labels import LabelColumns

__all__ = ["ConfigError", "DataConfig", "TrainConfig"]  # ConfigError: fashion_hier.errors owns it


@dataclass
class DataConfig:
    """Where the catalogue is, which columns feed each level, how images are loaded and split."""

    labels_csv: str | None = None
    image_dir: str | None = None
    columns: LabelColumns = field(default_factory=LabelColumns)
    id_column: str = "id"
    image_size: tuple[int, int] = (224, 224)
    resize: Literal["stretch", "pad"] = "stretch"
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_by: Literal["category", "subcategory"] = "subcategory"
    seed: int = 0
    cap_factor: float | None = None
    target_samples: int | None = None
    verify_images: bool = False
    # pixel budget per image, checked from the header before decoding: larger images are skipped and reported
    # as unreadable by the training loaders and verify_images; every other reader (predict, feature and
    # activation caches, search, spark) applies the default, fashion_hier.data.images.DEFAULT_MAX_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    loader: Literal["sequence", "tfdata"] = "sequence"
    workers: int = 1
    use_multiprocessing: bool = False
    augment: bool = True
    hue: bool = False
    flip_features: bool = False  # head on cached features: also train on the horizontally flipped views' features


@dataclass
class ModelConfig:
    """Arguments of ``fashion_hier.models.build_model`` (besides the class counts)."""

    backbone: str = "resnet50"
    weights: str | None = "imagenet"
    head: Literal["message_passing", "independent", "linear"] = "message_passing"
    units: int = 1024
    l2: float = 5e-4
    dropout: float = 0.3
    trainable_backbone: bool = True
    top_down: bool = True
    bottom_up: bool = True
    input_norm: Literal["none", "batchnorm"] = "none"  # normalisation of the pooled features before the head
    # with training.cache_features: after the head, fine-tune the backbone layers *after* this layer (e.g.
    # conv4_block6_out, the input of ResNet-50's last stage) with the head, from a cache of its activations
    trainable_from: str | None = None


@dataclass
class LossConfig:
    """Class weighting of the three cross-entropies, computed from the training labels."""

    weighting: Literal["inverse_frequency", "none", "smoothed", "effective_number",
                       "logit_adjustment"] = "smoothed"  # measured: experiments/results/fpi/recipe.md
    power: float = 1.0             # inverse_frequency (the paper's form): weight ~ count ** -power
    cap: float | None = None       # inverse_frequency / smoothed: largest weight (mean over samples is 1)
    beta: float = 0.999            # effective_number (Cui et al. 2019)
    tau: float = 1.0               # logit_adjustment (Menon et al. 2021)
    label_smoothing: float = 0.0   # category and subcategory targets
    focal_gamma: float = 0.0       # attribute columns (data.columns.groups): focal loss (Lin et al. 2017), 0 = cross-entropy
    attribute_weight: float = 1.0  # the attribute level's share of the total loss (category and subcategory: 1)

    def __post_init__(self) -> None:
        if not self.attribute_weight >= 0 or not self.focal_gamma >= 0:
            raise ConfigError(f"loss.attribute_weight and loss.focal_gamma must be >= 0, got "
                              f"{self.attribute_weight} and {self.focal_gamma}")

    @property
    def level_weights(self) -> dict[str, float]:
        """Keras ``loss_weights``: each level's share of the total loss."""
        return {"category": 1.0, "subcategory": 1.0, "attributes": float(self.attribute_weight)}


@dataclass
class OptimizerConfig:
    name: Literal["adam", "adamw"] = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.004    # adamw only: decoupled decay, applied as lr * weight_decay per step (Keras default)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: int = 0         # linear warm-up from 0 (cosine schedule only)


@dataclass
class TrainingConfig:
    """The fit loop: batch size, epochs, callbacks, and the optional frozen-backbone first stage."""

    batch_size: int = 32
    epochs: int = 10
    early_stopping_patience: int | None = None
    freeze_epochs: int = 0
    finetune_learning_rate: float = 1e-4
    finetune_epochs: int = 3  # model.trainable_from: epochs of the partial fine-tune (best on validation kept)
    finetune_crop: float | None = None  # model.trainable_from: random crops of the cached maps, sides >= this fraction
    tensorboard: bool = False
    jit_compile: bool | Literal["auto"] = "auto"
    run_eagerly: bool = False  # no graph tracing: slower steps, but a tiny run starts in seconds (tests, debugging)
    mixed_precision: Literal["auto", "off", "float32", "mixed_float16", "mixed_bfloat16", False] = "auto"  # auto: see fashion_hier.runtime
    distribution: Literal["none", "mirrored", "multi_worker"] = "none"
    seed: int | None = None  # weight initialisation and dropout; None: data.seed (which fixes the split)
    # frozen backbone only: cache its pooled features once (and the mirrored views' with data.flip_features)
    # and train the head on them: the same run directory in seconds per epoch instead of minutes
    cache_features: bool = False
    # at the end: fit one temperature per level on the validation split (fashion_hier.calibrate), stored in
    # model.keras, so that predict answers calibrated scores
    calibrate: bool = False

    def __post_init__(self) -> None:
        if self.mixed_precision is False:  # YAML reads a bare `off` as false
            self.mixed_precision = "off"
        if self.batch_size < 1 or self.epochs < 1:
            raise ConfigError(f"training.batch_size and training.epochs must be >= 1, got {self.batch_size} and {self.epochs}")
        if not 0 <= self.freeze_epochs <= self.epochs:
            raise ConfigError(f"training.freeze_epochs must lie in [0, training.epochs={self.epochs}], got {self.freeze_epochs}")


@dataclass
class TrainConfig:
    """Everything ``fashion_hier.train.train`` needs; the run directory is ``output_dir/name``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output_dir: str = "runs"
    name: str = "run"

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "TrainConfig":
        """Build from nested plain data; unknown keys, wrongly typed values and values that cannot work are errors."""
        config = _build(cls, data or {}, "")
        validate_config(config)
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist; write one with TrainConfig().to_yaml(path)")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigError(yaml_error_message(path, error)) from error
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
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        return path


# ---- dict <-> dataclass -----------------------------------------------------------------------

def _build(cls: type, data: Any, where: str) -> Any:
    """A ``cls`` instance from a mapping, checking keys and value types against the field hints."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in known]
    if unknown:
        raise ConfigError(f"unknown config key{'s' if len(unknown) > 1 else ''} "
                       f"{', '.join(repr(_join(where, k)) for k in unknown)}; known keys"
                       f"{' in ' + repr(where) if where else ''}: {', '.join(known)}")
    values = {}
    for key, value in data.items():
        hint, name = hints[key], _join(where, key)
        if dataclasses.is_dataclass(hint):
            values[key] = _build(hint, value, name)
        else:
            values[key] = _check_value(value, hint, name)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as error:  # a dataclass's own check (e.g. LabelColumns), placed at its key
        raise ConfigError(f"{where or 'config'}: {error}") from error


def _check_value(value: Any, hint: Any, name: str) -> Any:
    """``value`` if it fits ``hint`` (ints accepted for floats; lists for tuples), else a clear error."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _check_value(value, option, name)
            except ConfigError:
                continue
        raise ConfigError(f"{name}: expected {_describe(hint)}, got {value!r}")
    if origin is Literal:
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
