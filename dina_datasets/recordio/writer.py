"""Writing DINA records: Examples framed into a TFRecord file, published atomically with
their sidecar index (`recordio.index`). Re-exported by `recordio.records`."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import crc32c
import numpy as np

from dina_datasets import storage
from dina_datasets.recordio import framing, proto
from dina_datasets.recordio import index as sidecar

EXPLANATIONS = "explanations"


class RecordWriter:
    """Writes Examples to a TFRecord file atomically: nothing appears under `url` until
    `close()` (or the end of a `with` block) succeeds; an exception leaves no file. With
    `index=True` the sidecar index (`recordio.index`) is written beside it (see `close`)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None, *,
                 index: bool = False) -> None:
        self.url = url
        self.count = 0
        self._options = storage_options
        self._index = index
        self._offsets: list[int] = []
        self._keys: dict[str, list[Any]] = {}
        self._position = 0
        self._crc = 0
        self._ctx = storage.atomic_write(url, "wb", storage_options)
        self._handle = self._ctx.__enter__()

    def write(self, features: Mapping[str, Any]) -> None:
        """Append one record; numpy arrays become serialized tensors."""
        data = framing.frame(proto.encode_example(features))
        self._handle.write(data)
        if self._index:
            self._offsets.append(self._position)
            self._position += len(data)
            self._crc = crc32c.crc32c(data, self._crc)
            for name in sidecar.KEY_COLUMNS:
                if name in features:
                    self._keys.setdefault(name, [None] * self.count).append(
                        _key_value(features[name]))
            for column in self._keys.values():
                if len(column) == self.count:
                    column.append(None)
        self.count += 1

    def close(self) -> None:
        """Publish the file: with `index=True` its index first (without the file's version
        stamp, which a reader then replaces by a sample check), the file, then the index
        again with the stamp. A crash anywhere leaves no published file without its index;
        an index beside a file it does not describe is ignored by readers."""
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            layout = self._layout() if self._index else None
            if layout is not None:
                try:
                    sidecar.write(self.url, layout, self._options, stamp=False)
                except BaseException as err:
                    with contextlib.suppress(BaseException):
                        ctx.__exit__(type(err), err, err.__traceback__)
                    raise
            ctx.__exit__(None, None, None)
            if layout is not None:
                try:
                    sidecar.write(self.url, layout, self._options)
                except Exception as err:  # the unstamped index still describes the file
                    warnings.warn(f"the index of {self.url} carries no version stamp (it "
                                  f"could not be rewritten: {err!r}); readers check it "
                                  "against a sample of records instead", stacklevel=2)

    def _layout(self) -> sidecar.Index:
        offsets = np.asarray(self._offsets, np.int64)
        sizes = np.diff(np.append(offsets, self._position))
        fixed = len(sizes) > 0 and bool(np.all(sizes == sizes[0]))
        complete = {k: v for k, v in self._keys.items() if None not in v}
        return sidecar.Index(self.count, self._position, int(sizes[0]) if fixed else None,
                             None if fixed else offsets, f"{self._crc:08x}", None,
                             complete or None)

    def abort(self, exc: BaseException | None = None) -> None:
        """Drop everything written; nothing appears under `url`."""
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            err = exc or RuntimeError("aborted")
            try:
                ctx.__exit__(type(err), err, err.__traceback__)
            except BaseException as raised:
                if raised is not err:
                    raise

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


def _key_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    return value.item() if isinstance(value, np.generic) else value


def write_records(url: str, records: Iterable[Mapping[str, Any]], *,
                  storage_options: dict[str, Any] | None = None, index: bool = False) -> int:
    """Write Examples atomically (and their sidecar index with `index=True`); returns the
    number of records."""
    with RecordWriter(url, storage_options, index=index) as writer:
        for record in records:
            writer.write(record)
    return writer.count


def write_explanations(url: str, arrays: Iterable[np.ndarray], *,
                       storage_options: dict[str, Any] | None = None,
                       **extra_features: Iterable[Any]) -> int:
    """Write DINA explanation records (readable by the original TensorFlow loader).

    The sidecar index (`recordio.index`) is written beside the file. Each keyword is an
    extra per-record feature, one value per array (e.g. `index=`,
    `image_id=`, `label=`, `prediction=`); ints, floats, str/bytes or numpy arrays.
    """
    extras = {name: iter(values) for name, values in extra_features.items()}

    def records() -> Iterator[dict[str, Any]]:
        for i, array in enumerate(arrays):
            features: dict[str, Any] = {EXPLANATIONS: np.asarray(array)}
            for name, values in extras.items():
                try:
                    features[name] = next(values)
                except StopIteration:
                    raise ValueError(f"extra feature {name!r} has {i} values but there are "
                                     "more arrays: give one value per array") from None
            yield features
        for name, values in extras.items():
            if next(values, _END) is not _END:
                raise ValueError(f"extra feature {name!r} has more values than there are "
                                 "arrays: give one value per array")

    return write_records(url, records(), storage_options=storage_options, index=True)


_END = object()
