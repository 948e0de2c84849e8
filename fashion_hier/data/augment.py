"""Augmentation presets on albumentations 2.x that take and give float32 RGB pixels in 0..255.

albumentations reads float32 images as 0..1 (brightness, hue), so each training preset brackets
its transforms with ``FromFloat(max_value=1)`` (round and clip 0..255 floats to uint8) and
``ToFloat(max_value=1)`` (back to float32, same values). The transforms follow the paper's
notebook with the current names: ``RandomBrightnessContrast`` replaces ``RandomBrightness`` /
``RandomContrast``, ``Affine`` with reflected borders replaces ``ShiftScaleRotate``.

``apply`` runs a preset on one image with an explicit seed, so the Sequence and the tf.data
pipeline augment the same way and results do not depend on which worker ran first.
"""
from __future__ import annotations

import copy
import random
from typing import Sequence

import albumentations as A
import cv2
import numpy as np

from fashion_hier.data.images import check_size


def training_preset(image_size: int | Sequence[int] | None = None, *, hue: bool = False) -> A.Compose:
    """Flip, brightness/contrast, shift-scale-rotate with reflected borders, optional hue/saturation.

    With ``image_size`` the output is also resized to it (a no-op for loader images, which
    already have it).
    """
    transforms = [
        A.FromFloat(dtype="uint8", max_value=1),
        A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        A.Affine(translate_percent=(-0.0625, 0.0625), scale=(0.9, 1.1), rotate=(-15, 15),
                 border_mode=cv2.BORDER_REFLECT_101, p=0.5),
    ]
    if hue:
        transforms.append(A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=10, p=0.5))
    if image_size is not None:
        height, width = check_size(image_size, "image_size")
        transforms.append(A.Resize(height, width))
    transforms.append(A.ToFloat(max_value=1))
    return A.Compose(transforms)


def evaluation_preset() -> None:
    """No augmentation at evaluation time (identity): the loaders skip augmentation when given None."""
    return None


def check_augment(augment) -> None:
    """None or a callable taking ``image=`` like an albumentations transform; TypeError otherwise."""
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be None or an albumentations transform (callable with image=...), "
                        f"got {type(augment).__name__}")


def apply(augment, images: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """Augment each image of ``images`` (N, h, w, 3) with its own seed; float32 0..255 out.

    Works on a private copy of ``augment`` so that worker threads never share random state.
    """
    if augment is None:
        return images
    augment = copy.deepcopy(augment)
    out = np.empty_like(images, dtype=np.float32)
    for row, (image, seed) in enumerate(zip(images, seeds)):
        if hasattr(augment, "set_random_state"):
            # one generator shared by all transforms; Compose.set_random_seed would give each transform
            # its own generator with the same seed, so they would all fire (or not) together
            augment.set_random_state(np.random.default_rng(int(seed)), random.Random(int(seed)))
        result = augment(image=image)["image"]
        if result.shape != image.shape:
            raise ValueError(f"augmentation changed the image shape from {image.shape} to {result.shape}; "
                             "the loader needs images of image_size")
        out[row] = result
    return out


def sample_seeds(seed: int, epoch: int, indices: np.ndarray) -> np.ndarray:
    """One augmentation seed per sample, a function of (seed, epoch, sample index) only."""
    return np.array([np.random.SeedSequence([seed, epoch, int(index)]).generate_state(1)[0] for index in indices],
                    dtype=np.uint32)
