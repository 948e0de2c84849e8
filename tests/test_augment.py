"""Augmentation presets: current albumentations 2 transforms, float32 0..255 kept, seeded and reproducible."""
import albumentations as A
import cv2
import numpy as np
import pytest

from fashion_hier.data.augment import apply, evaluation_preset, sample_seeds, training_preset


def _photos(count=8, size=32, seed=0):
    """Integer-valued float32 images with structure (a gradient and a bright square), like decoded JPEGs."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    images = np.empty((count, size, size, 3), np.float32)
    for index in range(count):
        base = (rows * 4 + cols * 3 + rng.integers(0, 40, 3)[:, None, None]).transpose(1, 2, 0)
        images[index] = np.clip(base, 0, 255)
        images[index, 8:16, 8:16] = 250
    return images


@pytest.mark.parametrize("hue", [False, True])
def test_training_preset_keeps_shape_dtype_and_the_0_255_range(hue):
    images = _photos()
    augmented = apply(training_preset((32, 32), hue=hue), images, np.arange(len(images)))
    assert augmented.shape == images.shape and augmented.dtype == np.float32
    assert augmented.min() >= 0 and augmented.max() <= 255
    # still 0..255 in every image, never clipped to albumentations' float range 0..1
    assert np.all(augmented.max(axis=(1, 2, 3)) > 150) and np.all(augmented.mean(axis=(1, 2, 3)) > 40)
    changed = np.abs(augmented - images).mean(axis=(1, 2, 3)) > 1
    assert changed.sum() >= 4  # each transform fires with p=0.5: most of 8 images change


def test_training_preset_uses_the_current_transforms_with_reflected_borders():
    names = [type(transform).__name__ for transform in training_preset(hue=True)]
    for expected in ("HorizontalFlip", "RandomBrightnessContrast", "Affine", "HueSaturationValue"):
        assert expected in names
    assert "HueSaturationValue" not in [type(transform).__name__ for transform in training_preset()]
    affine = next(transform for transform in training_preset() if isinstance(transform, A.Affine))
    assert affine.border_mode == cv2.BORDER_REFLECT_101


def test_same_seeds_give_the_same_images_and_other_seeds_do_not():
    images = _photos()
    preset = training_preset((32, 32))
    first = apply(preset, images, sample_seeds(0, 0, np.arange(8)))
    again = apply(preset, images, sample_seeds(0, 0, np.arange(8)))
    next_epoch = apply(preset, images, sample_seeds(0, 1, np.arange(8)))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, next_epoch)


def test_transforms_of_a_preset_fire_independently_of_each_other():
    image = _photos(count=1)[0]
    both_flips = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])
    outcomes = set()
    for augmented in apply(both_flips, np.repeat(image[None], 64, axis=0), np.arange(64)):
        outcomes.add((np.array_equal(augmented, image[:, ::-1]), np.array_equal(augmented, image[::-1]),
                      np.array_equal(augmented, image[::-1, ::-1]), np.array_equal(augmented, image)))
    # none, horizontal only, vertical only, both: all four occur when the flips draw independently
    assert len(outcomes) == 4


def test_sample_seeds_depend_on_seed_epoch_and_index_only():
    seeds = sample_seeds(3, 2, np.array([5, 1, 9]))
    np.testing.assert_array_equal(seeds[[1, 0]], sample_seeds(3, 2, np.array([1, 5])))
    assert len(set(seeds.tolist()) | set(sample_seeds(3, 3, np.array([5, 1, 9])).tolist())) == 6


def test_apply_runs_the_given_transform_on_every_image():
    images = _photos(count=3)
    flipped = apply(A.Compose([A.HorizontalFlip(p=1.0)]), images, [0, 1, 2])
    np.testing.assert_array_equal(flipped, images[:, :, ::-1])


def test_evaluation_preset_is_the_identity():
    images = _photos(count=2)
    assert evaluation_preset() is None
    assert apply(evaluation_preset(), images, [0, 1]) is images


def test_apply_refuses_a_transform_that_changes_the_image_size():
    with pytest.raises(ValueError, match="shape"):
        apply(A.Compose([A.Resize(10, 10)]), _photos(count=1), [0])


def test_training_preset_refuses_a_bad_image_size():
    with pytest.raises(ValueError, match="image_size"):
        training_preset((32, 0))
