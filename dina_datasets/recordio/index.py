"""The sidecar index of a record file we write: `{file}.index.json` beside it.

Like mosaicml streaming's `index.json`, it says where every record lies without a scan:

    {"format": "dina-record-index", "version": 1,
     "file": "explanations.tfrecord", "file_size": 1204368, "signature": "...",
     "num_records": 2, "record_size": 602184,      # fixed-size files
     "offsets": null,                              # else the frame offsets, one per record
     "crc32c": "1c2f...",                          # CRC-32C of the whole file (hex)
     "keys": {"index": [...], "image_id": [...], "label": [...], "prediction": [...]}}

`keys` (present when the records carry them) lets small readers (the scores table, the
explorer) join scores to images without reading a map. Readers use an index only when its
`file_size` and `signature` (the file's mtime, generation or etag, compared when the file is
on the same kind of store: a folder copied to a bucket keeps a valid index) match the file.
When the signatures cannot be compared (another kind of store, or an index written before
its file was published, without one), the index's `crc32c` must be the file's when the store
keeps one (GCS), else a sample of the records (`SAMPLE`, first and last included) must lie
where the index puts them and carry its keys (the index is then used without its
`crc32c`, which a sample does not vouch for). Any other index is ignored with a warning,
and the file is inspected as if it had none.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import storage
from dina_datasets.errors import ProtoError, RecordError, TransferError
from dina_datasets.recordio import framing, proto

FORMAT = "dina-record-index"
VERSION = 1
SUFFIX = ".index.json"
KEY_COLUMNS = ("index", "image_id", "label", "prediction")
SAMPLE = 8  # records read to check an index whose signature cannot be compared


class StaleIndexWarning(UserWarning):
    """An index that does not describe its file; it is ignored."""


def index_url(url: str) -> str:
    """Where the index of the record file `url` lives."""
    return url + SUFFIX


@dataclass(frozen=True)
class Index:
    """Where the records of one file lie, and the join keys they carry."""

    num_records: int
    file_size: int
    record_size: int | None
    offsets: np.ndarray | None
    crc32c: str | None = None
    signature: str | None = None
    keys: dict[str, np.ndarray] | None = None

    def to_json(self, file: str) -> str:
        doc = {"format": FORMAT, "version": VERSION, "file": file,
               "file_size": self.file_size, "signature": self.signature,
               "num_records": self.num_records, "record_size": self.record_size,
               "offsets": None if self.offsets is None else self.offsets.tolist(),
               "crc32c": self.crc32c,
               "keys": None if self.keys is None else
               {k: np.asarray(v).tolist() for k, v in self.keys.items()}}
        return json.dumps(doc, separators=(",", ":"))


def parse(blob: bytes | str, url: str) -> Index:
    """An index from its JSON; ValueError naming what is wrong."""
    doc = json.loads(blob)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{url} is not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise ValueError(f"{url} has version {doc.get('version')!r}; this reader knows "
                         f"{VERSION}")
    n, size, record_size = doc["num_records"], doc["file_size"], doc.get("record_size")
    offsets = doc.get("offsets")
    if not all(isinstance(v, int) and v >= 0 for v in (n, size)):
        raise ValueError(f"{url}: num_records and file_size must be integers >= 0")
    if record_size is not None:
        if not isinstance(record_size, int) or record_size * n != size:
            raise ValueError(f"{url}: {n} records of {record_size} bytes do not make "
                             f"{size} bytes")
        offsets_array = None
    else:
        offsets_array = np.asarray(offsets, np.int64)
        if offsets_array.shape != (n,) or (n and (offsets_array[0] != 0 or np.any(
                np.diff(offsets_array) <= 0) or offsets_array[-1] >= size)):
            raise ValueError(f"{url}: offsets are not {n} increasing positions in the file")
    keys = doc.get("keys")
    if keys is not None:
        if not isinstance(keys, dict) or any(len(v) != n for v in keys.values()):
            raise ValueError(f"{url}: keys must hold one value per record")
        keys = {k: np.asarray(v, object if k == "image_id" else np.int64)
                for k, v in keys.items()}
    return Index(n, size, record_size, offsets_array, doc.get("crc32c"), doc.get("signature"),
                 keys)


def load(url: str, fs: Any, path: str, info: Mapping[str, Any]) -> Index | None:
    """The index of `url` when it exists and matches the file (`info`: fsspec info of the
    file); None when there is none; None with a StaleIndexWarning when it does not match."""
    return lookup(url, fs, path, info)[0]


def lookup(url: str, fs: Any, path: str, info: Mapping[str, Any]) -> tuple[Index | None, bool]:
    """`load`, and whether its answer is settled: False when an index is there but could not
    be read (an error the retries do not cover), so that nothing built on its absence is
    kept. Transient errors are retried like any ranged read (`storage.read_file`), and
    raise `TransferError` when the retries run out."""
    where = index_url(url)
    try:
        blob = storage.read_file(fs, path + SUFFIX, url=where)
    except FileNotFoundError:
        return None, True
    except TransferError:
        raise
    except Exception as err:  # an unreadable index is no index: the file is still readable
        warnings.warn(f"ignoring the index {where}: {err!r}", StaleIndexWarning, stacklevel=4)
        return None, False
    try:
        found = parse(blob, where)
    except (ValueError, KeyError, TypeError) as err:
        warnings.warn(f"ignoring the corrupt index {where}: {err}", StaleIndexWarning,
                      stacklevel=4)
        return None, True
    signature = storage.signature(info)
    comparable = found.signature and signature and \
        found.signature.split("=", 1)[0] == signature.split("=", 1)[0]
    if found.file_size != int(info["size"]) or (comparable and found.signature != signature):
        warnings.warn(f"ignoring the index {where}: it describes a file of "
                      f"{found.file_size} bytes (signature {found.signature}), but "
                      f"{url} has {info['size']} bytes (signature {signature}); the file "
                      "changed after the index was written", StaleIndexWarning, stacklevel=4)
        return None, True
    if not comparable:
        if differs := _differs(found, fs, path, url, info):
            warnings.warn(f"ignoring the index {where}: the signatures cannot be compared "
                          f"({found.signature} for {signature}) and {differs}: the file "
                          "changed after the index was written", StaleIndexWarning,
                          stacklevel=4)
            return None, True
        if not _crc_checked(found, info):  # a sample vouches for the records, not the CRC
            found = dataclasses.replace(found, crc32c=None)
    return found, True


def _store_crc(info: Mapping[str, Any]) -> str | None:
    """The file's CRC-32C (hex) when the store keeps one (GCS), else None."""
    kept = info.get("crc32c")
    if not isinstance(kept, str):
        return None
    try:
        crc = base64.b64decode(kept, validate=True).hex()
    except ValueError:
        return None
    return crc if len(crc) == 8 else None


def _crc_checked(found: Index, info: Mapping[str, Any]) -> bool:
    crc = _store_crc(info)
    return bool(found.crc32c) and crc is not None and crc == str(found.crc32c).lower()


def _differs(found: Index, fs: Any, path: str, url: str, info: Mapping[str, Any]
             ) -> str | None:
    """What says that the index does not describe the file, or None: the file's CRC-32C
    when the store keeps one (GCS does: no byte is read), else a sample of its records."""
    crc = _store_crc(info)
    if found.crc32c and crc is not None:
        return None if crc == found.crc32c.lower() else \
            f"the file's CRC-32C is {crc}, the index's {found.crc32c}"
    return _sample_differs(found, fs, path, url)


def _sample_differs(found: Index, fs: Any, path: str, url: str) -> str | None:
    """What a sample of the file's records says the index got wrong, or None: up to SAMPLE
    records spread over the file (first and last included), read in one concurrent call,
    must be whole frames where the index puts them, with the index's keys."""
    n = found.num_records
    if n == 0:
        return None
    picks = np.unique(np.linspace(0, n - 1, min(n, SAMPLE)).round().astype(np.int64))
    if found.record_size is not None:
        starts = picks * found.record_size
        ends = starts + found.record_size
    else:
        assert found.offsets is not None
        starts = found.offsets[picks]
        ends = np.append(found.offsets, found.file_size)[picks + 1]
    blobs = storage.read_ranges(fs, path, starts.tolist(), ends.tolist(), url=url)
    for k, start, blob in zip(picks.tolist(), starts.tolist(), blobs, strict=True):
        try:
            data = framing.check_frame(memoryview(blob), 0, len(blob), url=url, index=k,
                                       offset=start)
            features = proto.decode_example(data) if found.keys else {}
        except (RecordError, ProtoError) as err:
            return f"record {k} is not where the index puts it ({err})"
        for name, column in (found.keys or {}).items():
            kind, values = features.get(name, (None, ()))
            value = None if len(values) != 1 else \
                bytes(values[0]).decode("utf-8", "replace") if kind == "bytes" else \
                values[0].item()
            if value != column[k]:
                return f"record {k} has {name} {value!r}, the index {column[k]!r}"
    return None


def write(url: str, found: Index, storage_options: dict[str, Any] | None = None, *,
          stamp: bool = True) -> None:
    """Write the index of `url` (atomically), with the file's current size and signature;
    with `stamp=False`, as `found` says (for a file not published yet: no signature)."""
    if stamp:
        fs, path = storage.filesystem(url, storage_options)
        info = fs.info(path)
        found = Index(found.num_records, int(info["size"]), found.record_size, found.offsets,
                      found.crc32c, storage.signature(info), found.keys)
    with storage.atomic_write(index_url(url), "w", storage_options) as handle:
        handle.write(found.to_json(url.replace("\\", "/").rsplit("/", 1)[-1]))


def read_index(url: str, storage_options: dict[str, Any] | None = None) -> Index | None:
    """The valid index of `url`, or None (see `load`)."""
    fs, path = storage.filesystem(url, storage_options)
    return load(url, fs, path, fs.info(path))


def concat(parts: list[Index]) -> Index:
    """The index of the byte-wise concatenation of files with these indexes (checksum left
    to the caller, who streams the bytes)."""
    sizes = {p.record_size for p in parts if p.num_records}
    total = sum(p.file_size for p in parts)
    count = sum(p.num_records for p in parts)
    if len(sizes) == 1 and None not in sizes:
        offsets, record_size = None, sizes.pop()
    else:
        record_size = None
        starts = np.cumsum([0] + [p.file_size for p in parts[:-1]])
        offsets = np.concatenate([np.zeros(0, np.int64)] + [
            (p.offsets if p.record_size is None else
             np.arange(p.num_records, dtype=np.int64) * p.record_size) + start
            for p, start in zip(parts, starts, strict=True)])
    names = set.intersection(*(set(p.keys or ()) for p in parts)) if parts else set()
    keys = {k: np.concatenate([p.keys[k] for p in parts]) for k in sorted(names)} or None
    return Index(count, total, record_size, offsets, keys=keys)
