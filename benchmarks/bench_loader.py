"""Input-pipeline throughput: FashionSequence, the tf.data pipeline and the paper notebook's naive loader.

JPEGs are generated in a temporary folder at two sizes: catalogue (60x80, the Kaggle images) and
studio (1800x2400), as random smooth images (upscaled noise) so they compress like photos. Each
loader produces 224 px batches of 32, without augmentation:

- ``sequence_w0`` / ``sequence_w2``: ``FashionSequence`` with ``workers=0`` / ``workers=2``, iterated
  the way ``model.fit`` iterates it in Keras 3 (``PyDatasetAdapter``; with ``workers > 1`` the
  adapter runs an ``OrderedEnqueuer`` thread pool, with 0 or 1 the batches are made in the caller);
- ``tfdata``: ``make_dataset`` (parallel map + prefetch);
- ``naive``: ``skimage.io.imread`` + ``skimage.transform.resize`` per image, as the notebook did
  (scikit-image: ``pip install ".[bench]"``);
- ``full_decode`` (studio only): ``cv2.imread`` at full resolution + ``cv2.resize``, to show what
  reduced-resolution decoding saves.

Whether ``load_image`` asks OpenCV for a reduced decode (``IMREAD_REDUCED_*``) is checked by
recording the flags it passes to ``cv2.imread`` / ``cv2.imdecode``.

``run()`` is the entry point for ``benchmarks/run.py``; its key names are stable.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

if __package__ in (None, ""):  # run as a script from a checkout: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
from figures import script_main  # noqa: E402

IMAGE_SIZES = {"catalogue": (80, 60), "studio": (2400, 1800)}  # (height, width)
TARGET = (224, 224)
BATCH_SIZE = 32
REDUCED_FLAGS = {cv2.IMREAD_REDUCED_COLOR_2: "IMREAD_REDUCED_COLOR_2", cv2.IMREAD_REDUCED_COLOR_4: "IMREAD_REDUCED_COLOR_4",
                 cv2.IMREAD_REDUCED_COLOR_8: "IMREAD_REDUCED_COLOR_8"}


def write_jpegs(folder: Path, count: int, size: tuple[int, int], seed: int) -> list[str]:
    """``count`` random smooth RGB JPEGs of ``size`` (h, w), quality 90; returns their paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        coarse = rng.uniform(0, 255, (12, 9, 3)).astype(np.float32)
        image = cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        image += rng.normal(0, 4, image.shape).astype(np.float32)  # a little texture, like fabric
        path = folder / f"{index:05d}.jpg"
        cv2.imwrite(str(path), np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(str(path))
    return paths


def _count_images(batches: Iterable) -> int:
    return sum(len(batch[0] if isinstance(batch, tuple) else batch) for batch in batches)


def _images_per_second(loader: Callable[[list[str]], Iterable], paths: list[str]) -> float:
    """Images/s of consuming every batch ``loader(paths)`` yields, after an untimed pass over two
    images (imports, thread pools and tf.data's first trace are not counted)."""
    _count_images(loader(paths[:2]))
    start = time.perf_counter()
    seen = _count_images(loader(paths))
    elapsed = time.perf_counter() - start
    if seen != len(paths):
        raise RuntimeError(f"loader delivered {seen} images, expected {len(paths)}")
    return seen / elapsed


def sequence_batches(paths: list[str], workers: int) -> Iterator:
    """Batches of a FashionSequence as ``model.fit`` sees them (Keras 3's PyDatasetAdapter)."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from fashion_hier.data import FashionSequence

    sequence = FashionSequence(paths, None, batch_size=BATCH_SIZE, image_size=TARGET, workers=workers)
    return PyDatasetAdapter(sequence, shuffle=False).get_numpy_iterator()


def tfdata_batches(paths: list[str]) -> Iterator:
    from fashion_hier.data import make_dataset

    return make_dataset(paths, None, batch_size=BATCH_SIZE, image_size=TARGET).as_numpy_iterator()


def naive_batches(paths: list[str]) -> Iterator:
    """The paper notebook's loader: skimage read + resize per image, stacked into batches."""
    from skimage.io import imread
    from skimage.transform import resize

    for start in range(0, len(paths), BATCH_SIZE):
        yield np.stack([resize(imread(path), TARGET) for path in paths[start:start + BATCH_SIZE]])


def full_decode_batches(paths: list[str]) -> Iterator:
    """OpenCV at full resolution, then resize: the same work as load_image minus the reduced decode."""
    for start in range(0, len(paths), BATCH_SIZE):
        yield np.stack([cv2.resize(cv2.imread(path, cv2.IMREAD_COLOR), TARGET[::-1], interpolation=cv2.INTER_AREA)
                        for path in paths[start:start + BATCH_SIZE]])


@contextlib.contextmanager
def recorded_decode_flags() -> Iterator[list[int]]:
    """Record the flags passed to ``cv2.imread`` / ``cv2.imdecode`` while the block runs."""
    flags: list[int] = []
    originals = {name: getattr(cv2, name) for name in ("imread", "imdecode")}

    def recording(function):
        def wrapper(source, *args, **kwargs):
            flags.append(int(args[0] if args else kwargs.get("flags", cv2.IMREAD_COLOR)))
            return function(source, *args, **kwargs)
        return wrapper

    for name, function in originals.items():
        setattr(cv2, name, recording(function))
    try:
        yield flags
    finally:
        for name, function in originals.items():
            setattr(cv2, name, function)


def reduced_decode_flags(path: str) -> list[str]:
    """Names of the ``IMREAD_REDUCED_*`` flags ``load_image`` used for ``path`` (empty: full decode)."""
    from fashion_hier.data import load_image

    with recorded_decode_flags() as flags:
        load_image(path, TARGET)
    return [REDUCED_FLAGS[flag] for flag in flags if flag in REDUCED_FLAGS]


def run(quick: bool = False, seed: int = 0) -> dict:
    """Images/s of each loader at each image size, and whether studio JPEGs get a reduced decode."""
    counts = {"catalogue": 128, "studio": 16} if quick else {"catalogue": 400, "studio": 64}
    figures: dict[str, float | int | str | bool] = {}
    with tempfile.TemporaryDirectory(prefix="fashion_hier_bench_loader_") as folder:
        for offset, (name, size) in enumerate(IMAGE_SIZES.items()):
            paths = write_jpegs(Path(folder) / name, counts[name], size, seed + offset)
            figures[f"{name}_images"] = len(paths)
            loaders = {
                "sequence_w0": lambda chosen: sequence_batches(chosen, workers=0),
                "sequence_w2": lambda chosen: sequence_batches(chosen, workers=2),
                "tfdata": tfdata_batches,
                "naive": naive_batches,
            }
            if name == "studio":
                loaders["full_decode"] = full_decode_batches
            for loader, batches in loaders.items():
                figures[f"{name}_{loader}_images_per_s"] = _images_per_second(batches, paths)
                print(f"  {name} {loader}: {figures[f'{name}_{loader}_images_per_s']:.1f} images/s",
                      file=sys.stderr, flush=True)
            if name == "studio":
                flags = reduced_decode_flags(paths[0])
                figures["studio_reduced_decode_flag"] = ",".join(flags) or "none"
                figures["studio_reduced_decode_used"] = bool(flags)
    return figures


def main(argv: list[str] | None = None) -> int:
    return script_main(run, __doc__.splitlines()[0], "128 catalogue and 16 studio JPEGs instead of 400 and 64", argv)


if __name__ == "__main__":
    sys.exit(main())
