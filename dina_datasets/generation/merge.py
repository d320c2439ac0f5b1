"""Joining the parts of a generation run into the layout's single files.

TFRecord files concatenate byte-wise; the result is written atomically with its sidecar
index, built from the parts' own indexes (no re-scan). No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import crc32c

from dina_datasets import storage
from dina_datasets.errors import LayoutError, RecordError
from dina_datasets.layout import Layout
from dina_datasets.recordio import index, reader, records
from dina_datasets.runs import parts as parts_mod

CHUNK = 64 << 20
PREPROCESS = "preprocess"


@dataclass(frozen=True)
class MergeResult:
    """What a merge wrote."""

    url: str
    num_records: int
    num_parts: int
    preprocess_url: str | None = None
    already_merged: bool = False


def concatenate(sources: Sequence[str], url: str, *, expected: int | None = None,
                storage_options: dict[str, Any] | None = None) -> int:
    """Concatenate TFRecord files into `url` atomically, with its sidecar index; returns the
    record count.

    Each source's layout comes from its index (a scan for a source without one); `expected`
    records in all are checked before anything is written. The bytes are streamed once
    (CRC-32C computed on the way); the result's size is checked after the write and a wrong
    result removed.
    """
    layouts = [reader.file_index(source, storage_options) for source in sources]
    joined = index.concat(layouts)
    if expected is not None and joined.num_records != expected:
        raise RecordError(f"the {len(sources)} parts hold {joined.num_records} records, "
                          f"expected {expected}; nothing was written", url=url)
    crc = 0
    with storage.atomic_write(url, "wb", storage_options) as out:
        for source in sources:
            fs, path = storage.filesystem(source, storage_options)
            with fs.open(path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    crc = crc32c.crc32c(chunk, crc)
                    out.write(chunk)
        # the index before the file (as `RecordWriter.close`): a crash after the file is
        # published never leaves it without its keys; unstamped, a reader checks it against
        # a sample of records until the stamped one below replaces it
        joined = dataclasses.replace(joined, crc32c=f"{crc:08x}")
        index.write(url, joined, storage_options, stamp=False)
    fs, path = storage.filesystem(url, storage_options)
    written = int(fs.info(path)["size"])
    if written != joined.file_size:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(path)
        raise RecordError(f"merged file holds {written} bytes, expected {joined.file_size} "
                          "(the parts changed while merging?); it was removed", url=url)
    index.write(url, joined, storage_options)
    return joined.num_records


def merge(out: str, model: str, explainer: str, *, keep_parts: bool = False,
          storage_options: dict[str, Any] | None = None) -> MergeResult:
    """Join the parts of the run for `model`/`explainer` under `out` into the layout's
    `explanations.tfrecord` (and `preprocess_dataset.tfrecord` when it was asked for); the
    parts' cost records go into the run's manifest (key `cost`)."""
    layout = Layout(out)
    url = layout.explanations(model, explainer)
    manifest = parts_mod.read_manifest(url, storage_options)
    if manifest is None:
        raise LayoutError(f"no generation run for {model}/{explainer} under {out} (no "
                          f"{parts_mod.manifest_url(url)}); run `dina generate` first")
    num_images = int(manifest["num_images"])
    plan = parts_mod.plan(num_images, int(manifest["part_size"]))
    kinds = [""] + ([PREPROCESS] if manifest.get("preprocess") else [])
    done = parts_mod.complete_parts(url, plan, kinds, storage_options)
    if not done and storage.exists(url, storage_options):
        count = records.inspect(url, storage_options).num_records
        if count == num_images:
            return MergeResult(url, count, len(plan), already_merged=True)
    missing = [p for p in plan if p.index not in done]
    if missing:
        shown = ", ".join(f"{p.index} (images {p.start}-{p.stop - 1})" for p in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise LayoutError(f"cannot merge {model}/{explainer}: {len(missing)} of {len(plan)} "
                          f"parts are not complete: {shown}{more}. Run (or re-run, it resumes) "
                          "the `dina generate --shard K/N` commands that write them")
    preprocess_url = None
    if PREPROCESS in kinds:
        preprocess_url = layout.preprocess(manifest["model"])
        fs, path = storage.filesystem(parts_mod.manifest_url(preprocess_url), storage_options)
        with contextlib.suppress(FileNotFoundError):
            fs.rm(path)  # a stale description must never outlive the file it described
        concatenate([parts_mod.part_url(url, p, PREPROCESS) for p in plan], preprocess_url,
                    expected=num_images, storage_options=storage_options)
        parts_mod.write_manifest(preprocess_url, parts_mod.preprocess_manifest(manifest),
                                 storage_options)
    count = concatenate([parts_mod.part_url(url, p) for p in plan], url,
                        expected=num_images, storage_options=storage_options)
    costs = parts_mod.part_costs(url, plan, storage_options)
    parts_mod.write_manifest(url, {**manifest, "cost": costs}, storage_options)
    if not keep_parts:
        fs, folder = storage.filesystem(parts_mod.parts_folder(url), storage_options)
        with contextlib.suppress(FileNotFoundError):
            fs.rm(folder, recursive=True)
    return MergeResult(url, count, len(plan), preprocess_url)
