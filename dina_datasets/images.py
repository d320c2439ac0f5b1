"""The images to explain, in a deterministic order, with their join keys.

A source is a folder of class sub-folders (ImageNet validation once structured), a kecam
`imagenet_data.json`, or a flat folder of images. No TensorFlow here.
"""

from __future__ import annotations

import os
import re

from dina_datasets import formats
from dina_datasets.errors import AlignmentError, ConfigError, LayoutError
from dina_datasets.formats import UNKNOWN_LABEL
from dina_datasets.formats import ImageRef as ImageEntry  # one type for an image and its keys

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_PLACEHOLDER = re.compile(r"(ambiguous|unmatched)-record-\d{6,}")


def placeholder(status: str, record: int) -> str:
    """The image name `dina align` writes for a record it did not match to an image."""
    return f"{status}-record-{record:06d}"


def is_placeholder(name: str) -> bool:
    """Whether an image name or path of a json is `dina align`'s placeholder (no image)."""
    return _PLACEHOLDER.fullmatch(formats.image_id_of(name)) is not None


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def list_images(src: str) -> list[ImageEntry]:
    """The images of `src`, in a deterministic order.

    - a folder of class sub-folders: label = index of the class folder in sorted order
      (kecam's rule: the folder's integer value when every folder name is a number);
      images sorted by file stem, then path (ImageNet validation: val_00000001 first);
    - a kecam `.json` (`{"info": {"base_path": ...}, "test" or "validation": [{"image",
      "label"}]}`): its evaluation list, in the file's own order;
    - a flat folder of images: sorted by file stem, then path; label -1.
    """
    if not isinstance(src, str) or not src:
        raise ConfigError(f"images source must be a folder or a .json file, got {src!r}")
    if os.path.isfile(src):
        if not src.lower().endswith(".json"):
            raise ConfigError(f"images source {src!r} is a file but not a kecam .json; give a "
                              "folder of images, a folder of class folders, or a .json")
        return _from_json(src)
    if not os.path.isdir(src):
        raise LayoutError(f"images source {src!r} does not exist")
    return _from_folder(src)


def _entry(path: str, label: int) -> ImageEntry:
    return ImageEntry(path, os.path.splitext(os.path.basename(path))[0], int(label))


def _ordered(entries: list[ImageEntry], root: str) -> list[ImageEntry]:
    return sorted(entries, key=lambda e: (e.image_id, os.path.relpath(e.path, root)))


def _from_folder(src: str) -> list[ImageEntry]:
    names = sorted(os.listdir(src))
    files = [n for n in names if is_image(n) and os.path.isfile(os.path.join(src, n))]
    classes = [n for n in names if os.path.isdir(os.path.join(src, n))
               and any(is_image(f) for f in os.listdir(os.path.join(src, n)))]
    if files and classes:
        raise ConfigError(f"images source {src!r} mixes images ({files[0]!r}, ...) and class "
                          f"folders ({classes[0]!r}, ...); give one kind only")
    if files:
        return _ordered([_entry(os.path.join(src, n), UNKNOWN_LABEL) for n in files], src)
    if not classes:
        raise LayoutError(f"no images in {src!r} (looked for files ending in "
                          f"{', '.join(IMAGE_SUFFIXES)}, directly or in class sub-folders)")
    if all(c.isdigit() for c in classes):
        labels = {c: int(c) for c in classes}
    else:
        labels = {c: i for i, c in enumerate(classes)}
    entries = [_entry(os.path.join(src, c, f), labels[c]) for c in classes
               for f in sorted(os.listdir(os.path.join(src, c))) if is_image(f)]
    return _ordered(entries, src)


def _from_json(src: str) -> list[ImageEntry]:
    return [ImageEntry(os.path.expanduser(r.path), r.image_id, r.label)
            for r in formats.read_imagenet_json(src)]


def image_root(src: str) -> str:
    """The folder the paths of a source are relative to: the folder itself, or a kecam
    json's `base_path` (else the json's folder)."""
    if os.path.isfile(src) and is_kecam_json(src):
        import json

        with open(src, encoding="utf-8") as handle:
            try:
                info = json.load(handle).get("info") or {}
            except (ValueError, AttributeError):
                info = {}
        base = info.get("base_path") if isinstance(info, dict) else None
        return os.path.abspath(os.path.expanduser(base)) if base else \
            os.path.dirname(os.path.abspath(src))
    return os.path.abspath(src)


def relative_path(path: str, root: str) -> str:
    """`path` relative to `root` (forward slashes), or as it is when not below `root`."""
    rel = os.path.relpath(os.path.abspath(path), root)
    return path if rel.startswith(os.pardir) else rel.replace(os.sep, "/")


def is_kecam_json(src: str | None) -> bool:
    """Whether an images source is a kecam `imagenet_data.json` (whose list order is the
    order of the records it produced)."""
    return isinstance(src, str) and src.lower().endswith(".json")


def check_positional(src: str, what: str, assume_order: bool = False) -> None:
    """Allow pairing records without image keys with the images of `src` by position only
    for a kecam json or when the caller says the order is right; AlignmentError otherwise.

    The published DINA files carry no keys and their order is an unseeded shuffle of the
    images: paired by position with a folder, maps would be drawn or scored over the wrong
    images without a word.
    """
    if assume_order or is_kecam_json(src):
        return
    raise AlignmentError(
        f"{what} carry no image keys (image_id), so which image each map explains is "
        f"unknown: the published DINA files are in the order of an unseeded shuffle, not the "
        f"order of {src!r}. Pass the kecam imagenet_data.json that produced them as the "
        "images source, or --assume-order (assume_order=True) if you know the records follow "
        f"the sorted order of {src!r}")
