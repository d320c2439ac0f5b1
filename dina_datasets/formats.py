"""The bucket's small file formats, one home each, one set of parsing rules.

- `{Metric}_scores.json`: a JSON list of per-image floats, `null` where a score is undefined.
- kecam's `imagenet_data.json`: `{"info": {"base_path": ...}, "test" (or "validation"):
  [{"image": path, "label": int}, ...]}`, in record order.

A file that is missing raises `LayoutError` (or returns None where said); one that exists but
does not parse raises `FormatError` naming the file and the format expected.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import storage
from dina_datasets.errors import FormatError, LayoutError

UNKNOWN_LABEL = -1
_NUMBER_TYPES = {int, float, type(None)}


def parse_scores(blob: bytes | str, url: str) -> np.ndarray:
    """A score file's values as float64, NaN where the file holds null."""
    try:
        values = json.loads(blob)
    except ValueError as err:
        raise FormatError(f"{url} is not JSON ({err}); expected a list of per-image "
                          "scores") from None
    # json gives exactly int, float or None for numbers and null (bool is its own type)
    if not isinstance(values, list) or not set(map(type, values)) <= _NUMBER_TYPES:
        raise FormatError(f"{url} must hold a JSON list of numbers (one per image, null "
                          "where undefined)")
    return np.array(values, np.float64)  # None -> NaN


def read_scores(url: str, storage_options: dict[str, Any] | None = None
                ) -> np.ndarray | None:
    """A score file's values (see `parse_scores`); None when the file does not exist."""
    fs, path = storage.filesystem(url, storage_options)
    try:
        blob = fs.cat_file(path)
    except FileNotFoundError:
        return None
    return parse_scores(blob, url)


def dump_scores(values: Iterable[float]) -> str:
    """The JSON text of a score file: non-finite values become null."""
    return json.dumps([float(v) if math.isfinite(v) else None
                       for v in np.asarray(list(values) if not isinstance(values, np.ndarray)
                                           else values, np.float64)])


def write_scores(url: str, values: Iterable[float],
                 storage_options: dict[str, Any] | None = None) -> None:
    """Write a score file atomically."""
    text = dump_scores(values)
    with storage.atomic_write(url, "w", storage_options) as handle:
        handle.write(text)


@dataclass(frozen=True)
class ImageRef:
    """One entry of kecam's json: the image path (base_path applied), its id, its label."""

    path: str
    image_id: str
    label: int = UNKNOWN_LABEL


def image_id_of(path: str) -> str:
    """The ImageNet image id of a path: its file name without extension."""
    return posixpath.splitext(posixpath.basename(str(path).replace("\\", "/")))[0]


def parse_imagenet_json(blob: bytes | str, url: str) -> list[ImageRef]:
    """The evaluation list of kecam's `imagenet_data.json`, in the file's order."""
    try:
        data = json.loads(blob)
    except ValueError as err:
        raise FormatError(f"{url} is not JSON ({err}); expected kecam's imagenet_data.json"
                          ) from None
    key = "validation" if isinstance(data, dict) and "validation" in data else "test"
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise FormatError(f"{url} is not kecam's imagenet_data.json: expected an object with a "
                          "'test' (or 'validation') list of {'image': path, 'label': int}")
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    base = str(info.get("base_path") or "")
    refs = []
    for i, item in enumerate(items):
        image = item.get("image") if isinstance(item, dict) else None
        label = item.get("label", UNKNOWN_LABEL) if isinstance(item, dict) else None
        if not isinstance(image, str) or isinstance(label, bool) or not isinstance(label, int):
            raise FormatError(f"{url}: {key}[{i}] = {item!r} is not {{'image': path, "
                              "'label': int}")
        path = posixpath.join(base, image) if base and not image.startswith("/") else image
        refs.append(ImageRef(path, image_id_of(image), label))
    return refs


def read_imagenet_json(url: str, storage_options: dict[str, Any] | None = None
                       ) -> list[ImageRef]:
    """`parse_imagenet_json` of a file at any fsspec URL."""
    fs, path = storage.filesystem(url, storage_options)
    try:
        blob = fs.cat_file(path)
    except FileNotFoundError:
        raise LayoutError(f"no such file: {url} (kecam's imagenet_data.json)") from None
    return parse_imagenet_json(blob, url)
