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


class LayoutError(DinaError, FileNotFoundError):
    """A data folder that is missing or not shaped like the DINA bucket."""


class AlignmentError(DinaError, ValueError):
    """Two sources that must be joined row by row have different lengths."""


class RecordIndexError(DinaError, IndexError):
    """A record index or range outside the file."""


class FormatError(DinaError, ValueError):
    """A small bucket file (score JSON, kecam json, registry TOML, card YAML) that exists but
    cannot be parsed: names the file and the format expected."""


class NetworkError(DinaError, ConnectionError):
    """A remote URL that cannot be reached (no network, DNS failure, connection refused or
    timed out, offline mode): names the URL, the endpoint and what to do."""


class TransferError(NetworkError):
    """A read that kept failing after every retry (gcsfs's own, then ours)."""


class DinaWarning(UserWarning):
    """Base class of the package's warnings (the command line prints them as one line)."""
