"""Model factory: backbones by name, the message-passing head of Ferreira et al. 2018, baselines."""
from fashion_hier.models.attribute_groups import GroupActivation
from fashion_hier.models.backbones import BACKBONES, BackboneSpec, backbone_spec, backbone_trunk, build_backbone
from fashion_hier.models.factory import (
    backbone_model,
    build_head_model,
    build_head_model_from_config,
    build_model,
    build_model_from_config,
    copy_head_weights,
    model_keywords,
    network_of,
)
from fashion_hier.models.heads import HEADS, INPUT_NORMS, HeadSettings
from fashion_hier.models.preprocess import Preprocess

__all__ = ["BACKBONES", "BackboneSpec", "GroupActivation", "HEADS", "INPUT_NORMS", "HeadSettings", "Preprocess", "backbone_model",
           "backbone_spec", "backbone_trunk", "build_backbone", "build_head_model", "build_head_model_from_config",
           "build_model", "build_model_from_config", "copy_head_weights", "network_of", "model_keywords"]
