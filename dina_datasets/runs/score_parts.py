"""The part files of an evaluation run: per-part scores, the run's settings, the join.

A metric is computed part by part, on the fixed slices of the maps that a generation run uses
(`dina_datasets.runs.parts`). Each part's scores are written atomically as
`{Metric}_scores.json.parts/part-{start}-{stop}.json` (its scores, null where undefined, and
the seconds they took), so an interrupted run loses at most the parts in flight, and a re-run
or another shard computes only the missing ones. When every part of a metric is there they
are joined into the metric's score file and the folder is removed. The folder's `run.json`
records the settings the scores depend on: scores made with other settings are never mixed
in, and parts of maps that were rewritten since (`maps`, the maps file's signature) are
discarded with a warning.

Shards may finish together: each joins the parts it finds; a part removed meanwhile by the
shard that joined first raises FileNotFoundError from `join`, and the caller then checks that
the score file was written with its settings (`dina_datasets.metrics.evaluation.finish`).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from dina_datasets import formats, storage
from dina_datasets.errors import ConfigError, DinaWarning, FormatError
from dina_datasets.runs.parts import parts_folder

FORMAT = "dina-evaluation/1"
RUN_FILE = "run.json"

Range = tuple[int, int]


def part_name(start: int, stop: int) -> str:
    """The file name of the scores of maps [start, stop)."""
    return f"part-{start:07d}-{stop:07d}.json"


def part_url(score_url: str, start: int, stop: int) -> str:
    """Where the scores of maps [start, stop) of the score file `score_url` are kept."""
    return storage.join(parts_folder(score_url), part_name(start, stop))


def present(score_url: str, storage_options: dict[str, Any] | None = None) -> set[str]:
    """The names of the complete part files of `score_url`."""
    fs, folder = storage.filesystem(parts_folder(score_url), storage_options)
    try:
        names = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return set()
    names = {name.rstrip("/").rsplit("/", 1)[-1] for name in names}
    return {n for n in names if n.startswith("part-") and storage.TMP_MARK not in n}


def read_settings(score_url: str, storage_options: dict[str, Any] | None = None
                  ) -> dict | None:
    """The settings recorded by the run that wrote parts of `score_url`, or None."""
    url = storage.join(parts_folder(score_url), RUN_FILE)
    fs, path = storage.filesystem(url, storage_options)
    try:
        data = json.loads(fs.cat_file(path))
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise FormatError(f"{url} is not JSON ({err}): remove the folder or pass "
                          "--overwrite") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FormatError(f"{url} is not the record of an evaluation run ({FORMAT})")
    return data


def start(score_url: str, settings: dict[str, Any], overwrite: bool,
          storage_options: dict[str, Any] | None = None, keep: Sequence[str] = ()
          ) -> tuple[dict, bool]:
    """Check that the parts already under `score_url` were made with `settings`; returns
    the record to write (`write_settings`) and whether the earlier parts are to be
    discarded. Keys in `keep` are taken from the old record.

    Parts made with other settings raise a ConfigError naming them, unless `overwrite`
    (they are then discarded, by `write_settings`). Parts of other maps (the `maps`
    signature changed: the maps were rewritten) are discarded with a DinaWarning.
    """
    record = {"format": FORMAT, **settings}
    old = None if overwrite else read_settings(score_url, storage_options)
    if old is None:
        return record, overwrite
    changed = [k for k in record if k not in keep and old.get(k) != record[k]]
    if not changed:
        return {**record, **{k: old[k] for k in keep if k in old}}, False
    done = present(score_url, storage_options)
    if not done:
        return record, False
    if "maps" in changed:
        warnings.warn(f"{record.get('explanations', 'the maps')} changed since "
                      f"{parts_folder(score_url)} was scored ({old.get('maps')} -> "
                      f"{record['maps']}): its {len(done)} part(s) are discarded and scored "
                      "again", DinaWarning, stacklevel=2)
        return record, True
    detail = "; ".join(f"{k}: {old.get(k)!r} -> {record[k]!r}" for k in changed)
    raise ConfigError(f"{parts_folder(score_url)} holds scores of a run with other "
                      f"settings ({detail}). Re-run with the same settings to resume, pass "
                      "--overwrite to start again, or choose another --out")


def write_settings(score_url: str, record: dict, discard: bool,
                   storage_options: dict[str, Any] | None = None) -> None:
    """Record a run's settings (discarding earlier parts when `discard`)."""
    if discard:
        remove(score_url, storage_options)
    url = storage.join(parts_folder(score_url), RUN_FILE)
    if read_settings(score_url, storage_options) == record:
        return
    with storage.atomic_write(url, "w", storage_options) as handle:
        json.dump(record, handle, indent=1)


def write_part(score_url: str, start: int, values: np.ndarray, seconds: float, wall: float,
               storage_options: dict[str, Any] | None = None) -> None:
    """Write the scores of maps [start, start + len(values)) atomically, with the seconds
    spent inside the metric and the part's wall seconds."""
    url = part_url(score_url, start, start + len(values))
    text = (f'{{"seconds": {float(seconds)!r}, "wall_seconds": {float(wall)!r}, '
            f'"scores": {formats.dump_scores(values)}}}')
    with storage.atomic_write(url, "w", storage_options) as handle:
        handle.write(text)


def read_part(url: str, count: int, storage_options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, float, float]:
    """(scores, seconds, wall seconds) of a part file that should hold `count` scores."""
    fs, path = storage.filesystem(url, storage_options)
    try:
        data = json.loads(fs.cat_file(path))
        values = formats.parse_scores(json.dumps(data["scores"]), url)
        seconds, wall = float(data["seconds"]), float(data["wall_seconds"])
    except (ValueError, KeyError, TypeError, FormatError) as err:
        raise FormatError(f"{url} is not a part of scores ({err}): remove it and re-run to "
                          "compute it again") from None
    if len(values) != count:
        raise FormatError(f"{url} should hold {count} scores, found {len(values)}: remove it "
                          "and re-run to compute it again")
    return values, seconds, wall


def join(score_url: str, ranges: Sequence[Range],
         storage_options: dict[str, Any] | None = None
         ) -> tuple[np.ndarray, float, float] | None:
    """(scores, seconds, wall seconds) of `ranges` in order, or None while a part is
    missing. FileNotFoundError when a part listed vanishes while it is read (another shard
    joined and removed them)."""
    names = present(score_url, storage_options)
    if any(part_name(a, b) not in names for a, b in ranges):
        return None
    pieces, seconds, wall = [], 0.0, 0.0
    for a, b in ranges:
        values, spent, took = read_part(part_url(score_url, a, b), b - a, storage_options)
        pieces.append(values)
        seconds, wall = seconds + spent, wall + took
    return (np.concatenate(pieces) if pieces else np.zeros(0, np.float64)), seconds, wall


def remove(score_url: str, storage_options: dict[str, Any] | None = None) -> None:
    """Delete the part files of `score_url` (after the join, or to start again)."""
    fs, folder = storage.filesystem(parts_folder(score_url), storage_options)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(folder, recursive=True)
