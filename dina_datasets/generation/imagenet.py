"""Preparing ImageNet as DINA did: the validation images moved into class folders, and a
kecam dataset json (`imagenet_data.json`), this time in a deterministic, sorted order.
No TensorFlow here."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from dina_datasets import storage
from dina_datasets.errors import ConfigError, LayoutError
from dina_datasets.formats import UNKNOWN_LABEL
from dina_datasets.images import is_image

SYNSET_LABELS = "imagenet_2012_validation_synset_labels.txt"
VAL_NAME = "ILSVRC2012_val_{:08d}.JPEG"


@dataclass(frozen=True)
class StructureResult:
    moved: int
    already_structured: bool


def structure_val(raw_dir: str, labels_file: str | None = None) -> StructureResult:
    """Move `raw_dir/val/ILSVRC2012_val_*.JPEG` into `raw_dir/val/{synset}/`.

    `labels_file` (default `raw_dir/imagenet_2012_validation_synset_labels.txt`) lists one
    synset per validation image, in order. Every file is checked before anything moves;
    a folder already structured is left as it is.
    """
    val = os.path.join(raw_dir, "val")
    if not os.path.isdir(val):
        raise LayoutError(f"no 'val' folder in {raw_dir!r}: give the ILSVRC/Data/CLS-LOC folder")
    loose = [n for n in os.listdir(val) if is_image(n) and os.path.isfile(os.path.join(val, n))]
    if not loose:
        return StructureResult(0, True)
    labels_file = labels_file or os.path.join(raw_dir, SYNSET_LABELS)
    try:
        with open(labels_file, encoding="utf-8") as handle:
            labels = [line.strip() for line in handle if line.strip()]
    except OSError as err:
        raise LayoutError(f"cannot read the validation labels {labels_file!r} ({err.strerror}); "
                          f"download {SYNSET_LABELS} from the tensorflow/models repository "
                          "(research/slim/datasets) and pass it with --labels") from None
    moves = []
    for i, label in enumerate(labels):
        name = VAL_NAME.format(i + 1)
        source = os.path.join(val, name)
        target = os.path.join(val, label, name)
        if os.path.exists(target):
            continue
        if not os.path.exists(source):
            raise LayoutError(f"{name} (line {i + 1} of {labels_file}) is neither in {val} nor "
                              f"in {os.path.join(val, label)}; nothing was moved")
        moves.append((source, target))
    for source, target in moves:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)
    return StructureResult(len(moves), False)


def _class_folders(path: str) -> dict[str, int]:
    """kecam's class rule: sorted folder names, or their integer values when all are numbers."""
    names = sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n)))
    if not names:
        raise LayoutError(f"no class folders in {path!r}")
    if all(n.isdigit() for n in names):
        return {n: int(n) for n in names}
    return {n: i for i, n in enumerate(names)}


def _walk(path: str, classes: dict[str, int]) -> list[dict]:
    if not os.path.isdir(path):
        raise LayoutError(f"images folder {path!r} does not exist")
    items = []
    for folder in sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n))):
        for name in sorted(os.listdir(os.path.join(path, folder))):
            if is_image(name):
                items.append({"image": os.path.join(path, folder, name),
                              "label": classes.get(folder, UNKNOWN_LABEL)})
    unknown = sorted({os.path.basename(os.path.dirname(i["image"])) for i in items
                      if i["label"] == UNKNOWN_LABEL})
    if unknown:
        raise ConfigError(f"class folder(s) {unknown[:5]} of {path!r} are not among the "
                          "training classes")
    return sorted(items, key=_order)


def _order(item: dict) -> tuple[str, str]:
    return os.path.splitext(os.path.basename(item["image"]))[0], item["image"]


def make_imagenet_json(test_images: str, save: str, train_images: str | None = None) -> dict:
    """Write kecam's dataset json for `test_images` (and `train_images`), sorted.

    Same structure as kecam's `custom_dataset_script.py` (`info`, `indices_2_labels`,
    `train`, `test`); classes follow kecam's rule on the training folders (or on the test
    folders without training images); images are sorted by file stem then path, so the
    `test` list is the order `dina generate` uses for a structured validation folder.
    """
    classes = _class_folders(train_images or test_images)
    train = _walk(train_images, classes) if train_images else []
    test = _walk(test_images, classes)
    relative = not os.path.isabs(train_images or test_images)
    doc = {"info": {"num_classes": len(classes),
                    "base_path": os.path.abspath(".") if relative else ""},
           "indices_2_labels": {str(v): k for k, v in classes.items()},
           "train": train, "test": test}
    if not save.endswith(".json"):
        save += ".json"
    with storage.atomic_write(save, "w") as handle:
        json.dump(doc, handle, indent=2)
    return doc
