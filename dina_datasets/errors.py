"""The package's exceptions, all under `DinaError`: each says what was received and how to fix
it. Also the one positive-integer check every argument validation uses."""

from __future__ import annotations

import numbers
from typing import Any


class DinaError(Exception):
    """Base class of every error raised by dina_datasets."""


class ConfigError(DinaError, ValueError):
    """An unknown or unavailable model, explainer, metric or config name."""


class RecordError(DinaError, ValueError):
    """A TFRecord file, record or Example that cannot be read as DINA data.

    Carries the file's URL, the record index and the byte offset where the problem starts.
    """

    def __init__(self, message: str, *, url: str, index: int | None = None,
                 offset: int | None = None) -> None:
        self.url = url
        self.index = index
        self.offset = offset
        where = [f"in {url}"]
        if index is not None:
            where.append(f"record {index}")
        if offset is not None:
            where.append(f"byte offset {offset}")
        super().__init__(f"{message} ({', '.join(where)})")


class WireError(DinaError, ValueError):
    """Bytes that are not a valid frame or protobuf message; `offset` is relative to the
    buffer being parsed. Raised by the low-level decoders and turned into a `RecordError`
    (with the file, record index and absolute offset) by the readers."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class FrameError(WireError):
    """A malformed TFRecord frame (length or data CRC, truncation)."""


class ProtoError(WireError):
    """Bytes that are not the expected `Example` / `TensorProto` message."""


class LayoutError(DinaError, FileNotFoundError):
    """A data folder that is missing or not shaped like the DINA bucket."""


class AlignmentError(DinaError, ValueError):
    """Two sources that must be joined row by row have different lengths."""


class RecordIndexError(DinaError, IndexError):
    """A record index or range outside the file."""


class FormatError(DinaError, ValueError):
    """A small bucket file (score JSON, kecam json, registry TOML, card YAML) that exists but
    cannot be parsed: names the file and the format expected."""


class ImageReadError(DinaError, OSError):
    """An image file that cannot be read or decoded."""


class WeightsError(DinaError):
    """Model weights that cannot be had (no network) or loaded (a file that does not fit every
    weighted layer of the model)."""


def check_positive_int(name: str, value: Any, *, minimum: int = 1,
                       allow_none: bool = False) -> int | None:
    """`value` as an int when it is an integer >= `minimum` (numpy integers too); a ConfigError
    (a ValueError) naming `name` otherwise. `True` is not an integer here; None passes only
    with `allow_none`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    return int(value)
class NetworkError(DinaError, ConnectionError):
    """A remote URL that cannot be reached (no network, DNS failure, connection refused or
    timed out, offline mode): names the URL, the endpoint and what to do."""


class TransferError(NetworkError):
    """A read or upload that kept failing after every retry (gcsfs's own, then ours)."""


class DinaWarning(UserWarning):
    """Base class of the package's warnings (the command line prints them as one line)."""
