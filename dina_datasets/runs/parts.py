"""How a generation run is cut into parts and shards, where the parts live, and the run's
manifest (the recorded image order and settings). No TensorFlow here.

Parts are fixed slices of the full image list, `part_size` images each: part p holds images
[p * part_size, (p + 1) * part_size). Shard K/N (1-based) takes the K-th of N contiguous
blocks of parts, so the shards' parts, concatenated in order, are the full list.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dina_datasets import storage
from dina_datasets.errors import ConfigError, FormatError, LayoutError, check_positive_int
from dina_datasets.recordio.index import SUFFIX

PART_SIZE = 256
MANIFEST_FORMAT = "dina-generation/1"
PARTS_SUFFIX = ".parts"
MANIFEST_SUFFIX = ".manifest.json"
COST_SUFFIX = ".cost.json"


@dataclass(frozen=True)
class Part:
    """Images [start, stop) of the full list, written as one file."""

    index: int
    start: int
    stop: int
    total: int

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}-of-{self.total:05d}.tfrecord"

    def __len__(self) -> int:
        return self.stop - self.start


def plan(num_images: int, part_size: int = PART_SIZE) -> list[Part]:
    """The parts of a run over `num_images` images."""
    check_positive_int("part size", part_size)
    total = -(-num_images // part_size)
    return [Part(i, i * part_size, min(num_images, (i + 1) * part_size), total)
            for i in range(total)]


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int]:
    """`"K/N"` (1 <= K <= N) as (K, N); None means the whole run, (1, 1)."""
    if text is None:
        return 1, 1
    if isinstance(text, tuple):
        k, n = text
    else:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match:
            raise ConfigError(f"--shard must look like K/N (e.g. 2/8, the second of eight), "
                              f"got {text!r}")
        k, n = int(match[1]), int(match[2])
    if not 1 <= k <= n:
        raise ConfigError(f"--shard {k}/{n}: K must be between 1 and N (shards are numbered "
                          f"1 to {max(n, 1)})")
    return k, n


def _block(total: int, k: int, n: int) -> range:
    base, extra = divmod(total, n)
    start = (k - 1) * base + min(k - 1, extra)
    return range(start, start + base + (1 if k <= extra else 0))


def shard(parts: Sequence[Part], k: int, n: int) -> list[Part]:
    """The parts of shard k of n: the k-th of n contiguous, near-equal blocks."""
    return [parts[i] for i in _block(len(parts), k, n)]


def parts_folder(url: str) -> str:
    """Where the parts of the file `url` are written before the merge."""
    return url + PARTS_SUFFIX


def part_url(url: str, part: Part, kind: str = "") -> str:
    """The part file of `url` (`kind` "preprocess" for the preprocess parts)."""
    return storage.join(parts_folder(url), f"{kind}-{part.name}" if kind else part.name)


def cost_url(url: str, part: Part) -> str:
    """The cost record of a part (`dina_datasets.runs.cost`), written once the part is complete."""
    return storage.join(parts_folder(url), part.name.removesuffix(".tfrecord") + COST_SUFFIX)


def part_costs(url: str, parts: Sequence[Part], storage_options: dict[str, Any] | None = None
               ) -> list[dict]:
    """The cost records of the parts that have one, in part order."""
    from dina_datasets.runs import cost

    found = []
    for part in parts:
        data = cost.read(cost_url(url, part), storage_options)
        if data is not None:
            found.append(data)
    return found


def manifest_url(url: str) -> str:
    """The run's manifest, beside the merged file: settings and the recorded image order."""
    return url + MANIFEST_SUFFIX


def read_manifest(url: str, storage_options: dict[str, Any] | None = None) -> dict | None:
    """The manifest of the run writing `url`, or None when there is none."""
    murl = manifest_url(url)
    fs, path = storage.filesystem(murl, storage_options)
    if not fs.exists(path):
        return None
    try:
        manifest = json.loads(fs.cat_file(path))
    except ValueError as err:
        raise FormatError(f"unreadable generation manifest {murl}: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise FormatError(f"{murl} is not a generation manifest ({MANIFEST_FORMAT})")
    return manifest


def write_manifest(url: str, manifest: dict, storage_options: dict[str, Any] | None = None
                   ) -> None:
    with storage.atomic_write(manifest_url(url), "w", storage_options) as handle:
        json.dump(manifest, handle, indent=1)


def complete_parts(url: str, parts: Sequence[Part], kinds: Sequence[str] = ("",),
                   storage_options: dict[str, Any] | None = None) -> set[int]:
    """Indices of the parts whose files (every kind) exist under their final names."""
    fs, folder = storage.filesystem(parts_folder(url), storage_options)
    try:
        present = {name.rstrip("/").rsplit("/", 1)[-1] for name in fs.ls(folder, detail=False)}
    except FileNotFoundError:
        return set()
    return {p.index for p in parts
            if all((f"{kind}-{p.name}" if kind else p.name) in present for kind in kinds)}


def remove_partial(url: str, part: Part, kinds: Sequence[str] = ("",),
                   storage_options: dict[str, Any] | None = None) -> None:
    """Delete what an interrupted write of `part` left (temporary files)."""
    fs, folder = storage.filesystem(parts_folder(url), storage_options)
    try:
        names = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return
    names_of = [f"{kind}-{part.name}" if kind else part.name for kind in kinds]
    prefixes = tuple(n + tail + storage.TMP_MARK for n in names_of for tail in ("", SUFFIX))
    for name in names:
        if name.rstrip("/").rsplit("/", 1)[-1].startswith(prefixes):
            with contextlib.suppress(FileNotFoundError):
                fs.rm(name)


# Libraries whose versions a manifest records (distribution names; not imported).
LIBRARIES = ("dina-datasets", "tensorflow", "tf-keras", "keras-cv-attention-models", "xplique",
             "numpy")
# Recorded for provenance, but not settings that make a resumed run differ.
NOT_SETTINGS = frozenset({"images", "preprocess", "versions", "images_source",
                          "explainer_params", "model_source"})


def library_versions() -> dict[str, str | None]:
    """Installed versions of LIBRARIES (None when one is not installed)."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if versions["dina-datasets"] is None:  # a checkout on PYTHONPATH, not installed
        from dina_datasets._version import __version__

        versions["dina-datasets"] = __version__
    return versions


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


def make_manifest(config: str, model: str, explainer: str,
                  images: Sequence[tuple[str, int, str]], *, weights: str, batch_size: int,
                  part_size: int, seed: int, params: dict, preprocess: bool = False,
                  images_source: str | None = None, explainer_params: dict | None = None,
                  model_source: str | None = None) -> dict:
    """A run's manifest: its settings, its images (index, image_id, label, path relative to
    `images_source`), and for provenance the effective explainer parameters, what built the
    model, and the library versions."""
    return {
        "format": MANIFEST_FORMAT, "config": config, "model": model, "explainer": explainer,
        "weights": weights, "batch_size": batch_size, "part_size": part_size, "seed": seed,
        "num_images": len(images), "params": _json(params), "preprocess": preprocess,
        "explainer_params": _json(explainer_params if explainer_params is not None else params),
        "model_source": model_source, "versions": library_versions(),
        "images_source": images_source,
        "images": [[i, image_id, label, path] for i, (image_id, label, path) in
                   enumerate(images)],
    }


def _same_images(old: dict, new: dict) -> bool:
    return [row[:3] for row in old.get("images", [])] == [row[:3] for row in new["images"]]


def differences(old: dict, new: dict) -> list[str]:
    """The settings in which two manifests differ (whether a preprocess file is written,
    where the images lie and the library versions do not change what the run computes)."""
    keys = [k for k in new if k not in NOT_SETTINGS and old.get(k) != new[k]]
    return keys if _same_images(old, new) else [*keys, "images"]


def start_run(url: str, manifest: dict, overwrite: bool,
              storage_options: dict[str, Any] | None = None) -> None:
    """Record the run's manifest, or check that it matches the run being resumed (a run
    that wrote nothing yet is simply replaced)."""
    old = None if overwrite else read_manifest(url, storage_options)
    fresh = old is not None and differences(old, manifest) and not _has_output(
        url, storage_options)
    if overwrite or fresh:
        fs, folder = storage.filesystem(parts_folder(url), storage_options)
        with contextlib.suppress(FileNotFoundError):
            fs.rm(folder, recursive=True)
    else:
        if old is not None:
            diff = differences(old, manifest)
            if diff:
                changed = "; ".join(f"{k}: {old.get(k)!r} -> {manifest[k]!r}" for k in diff
                                    if k != "images")
                raise ConfigError(f"{url} belongs to a run with other settings ({', '.join(diff)}"
                                  f" differ{': ' + changed if changed else ''}). Re-run with the "
                                  "same settings to resume, pass --overwrite to start again, or "
                                  "choose another --out")
            if old.get("preprocess") == manifest["preprocess"]:
                return
        elif storage.exists(url, storage_options):
            raise ConfigError(f"{url} already exists and was not written by `dina generate` "
                              "(no manifest): pass --overwrite to replace it, or another --out")
    write_manifest(url, manifest, storage_options)


def _has_output(url: str, storage_options: dict[str, Any] | None) -> bool:
    """Whether a run left a merged file or any complete part under `url`."""
    if storage.exists(url, storage_options):
        return True
    fs, folder = storage.filesystem(parts_folder(url), storage_options)
    try:
        names = [n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(folder, detail=False)]
    except FileNotFoundError:
        return False
    return any(n.endswith(".tfrecord") and storage.TMP_MARK not in n for n in names)


def describes(preprocess_url: str, manifest: dict,
              storage_options: dict[str, Any] | None = None) -> bool:
    """Whether the preprocess file exists and holds this run's images (same model, weights,
    image order), so that its inputs and predictions can be reused."""
    try:
        old = read_manifest(preprocess_url, storage_options)
    except LayoutError:
        return False
    if old is None or not storage.exists(preprocess_url, storage_options):
        return False
    if (old.get("model"), old.get("weights"), old.get("num_images")) != (
            manifest["model"], manifest["weights"], manifest["num_images"]):
        return False
    from dina_datasets.recordio.records import inspect

    return _same_images(old, manifest) and \
        inspect(preprocess_url, storage_options).num_records == manifest["num_images"]


def preprocess_manifest(manifest: dict) -> dict:
    """The manifest of a run's preprocess file: model, weights and images."""
    keep = ("format", "model", "weights", "num_images", "images")
    return {k: manifest[k] for k in keep}
