"""The images to explain, in a deterministic order, with their join keys.

A source is a folder of class sub-folders (ImageNet validation once structured), a kecam
`imagenet_data.json`, or a flat folder of images. No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from dina_datasets.errors import ConfigError, LayoutError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
UNKNOWN_LABEL = -1


@dataclass(frozen=True)
class ImageEntry:
    """One image: its file, its id (the file stem) and its class (-1 when unknown)."""

    path: str
    image_id: str
    label: int = UNKNOWN_LABEL


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
    try:
        with open(src, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read kecam json {src!r}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{src!r} is not a kecam dataset json (expected an object with "
                          "'test' or 'validation')")
    key = "validation" if "validation" in data else "test"
    items = data.get(key)
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{src!r} has no '{key}' list of images: kecam's dataset json holds "
                          "{'info': ..., 'train': [...], 'test': [{'image': ..., 'label': ...}]}")
    base = os.path.expanduser(str((data.get("info") or {}).get("base_path") or ""))
    entries = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("image"), str):
            raise ConfigError(f"{src!r}: entry {i} of '{key}' has no 'image' path: {item!r}")
        label = item.get("label", UNKNOWN_LABEL)
        if isinstance(label, bool) or not isinstance(label, int):
            raise ConfigError(f"{src!r}: entry {i} of '{key}' has a non-integer label "
                              f"{label!r}")
        entries.append(_entry(os.path.join(base, item["image"]) if base else item["image"],
                              label))
    return entries
