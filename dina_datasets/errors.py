"""The package's exceptions: each says what was received and how to fix it."""

from __future__ import annotations


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


class TransferError(DinaError, OSError):
    """A read or upload that kept failing after every retry."""


class LayoutError(DinaError, FileNotFoundError):
    """A data folder that is missing or not shaped like the DINA bucket."""


class AlignmentError(DinaError, ValueError):
    """Two sources that must be joined row by row have different lengths."""


class RecordIndexError(DinaError, IndexError):
    """A record index or range outside the file."""


class FormatError(DinaError, ValueError):
    """A small bucket file (score JSON, kecam json, registry TOML, card YAML) that exists but
    cannot be parsed: names the file and the format expected."""


def check_positive_int(name: str, value: object) -> int:
    """`value` when it is an integer >= 1 (bool excluded), else ConfigError naming `name`."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
