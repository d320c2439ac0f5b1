"""The demo's images: scikit-image's sample photographs, and small square crops of them for
the planted-truth model (32x32 inputs)."""

from __future__ import annotations

import json
import os

import numpy as np

from dina_datasets.demo.settings import PHOTOS


def _photo(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return image[..., :3]


def write_photos(folder: str, names: tuple[str, ...] = PHOTOS) -> list[str]:
    """Save scikit-image's sample photographs as PNG files; returns their paths."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    paths = []
    for name in names:
        path = os.path.join(folder, f"{name}.png")
        Image.fromarray(_photo(name)).convert("RGB").save(path)
        paths.append(path)
    return paths


def write_crops(folder: str, count: int, size: int = 32, names: tuple[str, ...] = PHOTOS,
                seed: int = 0) -> list[str]:
    """Save `count` square crops of the photographs (random places and sides, from
    `default_rng(seed)`), resized to `size` x `size`, as `crop_000.png`...; returns their
    paths."""
    from PIL import Image

    if count < 1:
        raise ValueError(f"count must be a positive number of crops, got {count}")
    os.makedirs(folder, exist_ok=True)
    photos = [_photo(name) for name in names]
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(count):
        photo = photos[k % len(photos)]
        height, width = photo.shape[:2]
        side = int(rng.integers(min(height, width) // 8, min(height, width) // 2 + 1))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        crop = Image.fromarray(photo[top:top + side, left:left + side]).convert("RGB")
        path = os.path.join(folder, f"crop_{k:03d}.png")
        crop.resize((size, size), Image.BICUBIC).save(path)
        paths.append(path)
    return paths


def write_image_list(path: str, paths: list[str]) -> str:
    """A kecam-style image list (`{"info": {"base_path"}, "test": [{"image", "label": -1}]}`)
    of images from several folders, for the commands that look images up by id (`dina
    explore --images FILE`); returns `path`."""
    from dina_datasets import storage

    base = os.path.dirname(os.path.abspath(path))
    items = [{"image": os.path.relpath(os.path.abspath(p), base).replace(os.sep, "/"),
              "label": -1} for p in paths]
    with storage.atomic_write(path, "wb") as handle:
        handle.write(json.dumps({"info": {"base_path": base}, "test": items},
                                indent=1).encode())
    return path
