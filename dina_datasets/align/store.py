"""Where an alignment keeps its work: fingerprint parts beside the output, one `.npy` file
per part of records or images, each written under a temporary name and renamed complete,
and the manifest of the job they belong to. A re-run (or another shard) skips the parts
already there."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from dina_datasets import storage
from dina_datasets.errors import ConfigError
from dina_datasets.runs import parts as parts_mod

SUFFIX = ".parts"
MANIFEST = "manifest.json"
FORMAT = "dina-align/1"


class Store:
    """The parts folder of the alignment written to `out`."""

    def __init__(self, out: str, storage_options: dict[str, Any] | None = None) -> None:
        self.folder = out + SUFFIX
        self.options = storage_options

    def _url(self, name: str) -> str:
        return storage.join(self.folder, name)

    @staticmethod
    def name(kind: str, part: parts_mod.Part) -> str:
        return f"{kind}-{part.name.removesuffix('.tfrecord')}.npy"

    def start(self, manifest: dict, overwrite: bool) -> None:
        """Record the job's manifest, or check that the parts there belong to this job."""
        url = self._url(MANIFEST)
        fs, path = storage.filesystem(url, self.options)
        old = json.loads(fs.cat_file(path)) if fs.exists(path) else None
        if old is not None and old != manifest and not overwrite:
            keys = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            raise ConfigError(f"{self.folder} holds the parts of another alignment ("
                              f"{', '.join(keys)} differ): re-run with the same settings to "
                              "resume, pass --overwrite to start again, or choose another --out")
        if old is not None and old == manifest and not overwrite:
            return
        self.remove()
        with storage.atomic_write(url, "w", self.options) as handle:
            json.dump(manifest, handle, indent=1)

    def done(self, kind: str, parts: Sequence[parts_mod.Part]) -> set[int]:
        """Indices of the complete parts of `kind`."""
        fs, folder = storage.filesystem(self.folder, self.options)
        try:
            present = {n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(folder, detail=False)}
        except FileNotFoundError:
            return set()
        return {p.index for p in parts if self.name(kind, p) in present}

    def save(self, kind: str, part: parts_mod.Part, array: np.ndarray) -> None:
        with storage.atomic_write(self._url(self.name(kind, part)), "wb", self.options) as handle:
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(array, np.float32))
            handle.write(buffer.getvalue())

    def load(self, kind: str, parts: Sequence[parts_mod.Part]) -> np.ndarray:
        """The parts of `kind`, concatenated in order."""
        arrays = []
        for part in parts:
            fs, path = storage.filesystem(self._url(self.name(kind, part)), self.options)
            arrays.append(np.load(io.BytesIO(fs.cat_file(path))))
        return np.concatenate(arrays) if arrays else np.empty((0, 0), np.float32)

    def remove(self) -> None:
        fs, folder = storage.filesystem(self.folder, self.options)
        with contextlib.suppress(FileNotFoundError):
            fs.rm(folder, recursive=True)
