"""The small JSON records runs leave beside their outputs (cost records, settings files):
written atomically, read back with their format checked."""

from __future__ import annotations

import json
from typing import Any

from dina_datasets import storage
from dina_datasets.errors import FormatError


def write(url: str, data: dict[str, Any], storage_options: dict[str, Any] | None = None
          ) -> None:
    """Write a record atomically (readers see the old one or the new one)."""
    with storage.atomic_write(url, "w", storage_options) as handle:
        json.dump(data, handle, indent=1)


def read(url: str, fmt: str, what: str, storage_options: dict[str, Any] | None = None,
         required: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The record at `url` (a JSON object whose `format` is `fmt` and that holds the keys
    `required`), None when the file is missing; FormatError naming `what` otherwise."""
    fs, path = storage.filesystem(url, storage_options)
    try:
        blob = fs.cat_file(path)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(blob)
    except ValueError as err:
        raise FormatError(f"{url} is not JSON ({err}); expected a {fmt} {what}") from None
    if not isinstance(data, dict) or data.get("format") != fmt or \
            any(k not in data for k in required):
        raise FormatError(f"{url} is not a {fmt} {what}")
    return data
