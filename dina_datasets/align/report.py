"""What an alignment writes, each file atomically:

- `aligned.json`: kecam's `imagenet_data.json` format, its `test` list in record order
  (`{"image": path relative to info.base_path, "label": int}`), usable wherever
  `--images imagenet_data.json` / `imagenet_json=` is accepted. A record that is not
  `matched` gets a placeholder that names no file, `{"image": "unmatched-record-000123",
  "label": -1, "status": "unmatched"}` (or `ambiguous-...`): no image is guessed, drawing it
  fails with that name, and its image_id is unique, so that statistics still pair the
  other records by image_id (an empty id would make them fall back to record positions);
- `aligned.report.json`: the settings, the thresholds, the counts per status, and per
  record its image, best candidate, similarity, margin and status;
- `aligned.csv`: the per-record table (record, status, image, candidate, similarity,
  margin).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from dina_datasets import storage
from dina_datasets.align.matching import MATCHED, Assignment
from dina_datasets.formats import UNKNOWN_LABEL
from dina_datasets.images import ImageEntry, placeholder, relative_path


def paths(out: str) -> tuple[str, str, str]:
    """The report and CSV written beside `out` (aligned.json -> aligned.report.json,
    aligned.csv)."""
    stem = out[:-5] if out.lower().endswith(".json") else out
    return out, f"{stem}.report.json", f"{stem}.csv"


def kecam_json(assignment: Assignment, entries: Sequence[ImageEntry], root: str,
               info: dict[str, Any]) -> dict[str, Any]:
    """The kecam json of an alignment (see the module docstring)."""
    test = []
    for k, status in enumerate(assignment.status):
        if status == MATCHED:
            entry = entries[int(assignment.image[k])]
            test.append({"image": relative_path(entry.path, root), "label": int(entry.label)})
        else:
            test.append({"image": placeholder(str(status), k), "label": UNKNOWN_LABEL,
                         "status": str(status)})
    labels = [e.label for e in entries if e.label != UNKNOWN_LABEL]
    return {"info": {"base_path": root, "num_classes": max(labels) + 1 if labels else 0,
                     **info}, "test": test}


def rows(assignment: Assignment, entries: Sequence[ImageEntry], root: str
         ) -> list[dict[str, Any]]:
    """Per record: status, matched image, best candidate, similarity and margin."""
    out = []
    for k in range(len(assignment.status)):
        image = int(assignment.image[k])
        out.append({"record": k, "status": str(assignment.status[k]),
                    "image": relative_path(entries[image].path, root) if image >= 0 else "",
                    "candidate": relative_path(entries[int(assignment.candidate[k])].path, root),
                    "similarity": round(float(assignment.similarity[k]), 6),
                    "margin": round(float(assignment.margin[k]), 6)})
    return out


def write(out: str, assignment: Assignment, entries: Sequence[ImageEntry], root: str,
          settings: dict[str, Any], storage_options: dict[str, Any] | None = None
          ) -> tuple[str, str, str]:
    """Write aligned.json, its report and its CSV; returns their URLs."""
    json_url, report_url, csv_url = paths(out)
    table = rows(assignment, entries, root)
    counts = {s: assignment.count(s) for s in ("matched", "ambiguous", "unmatched")}
    with storage.atomic_write(csv_url, "w", storage_options) as handle:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(table[0]) if table else ["record"])
        writer.writeheader()
        writer.writerows(table)
        handle.write(text.getvalue())
    with storage.atomic_write(report_url, "w", storage_options) as handle:
        json.dump({**settings, "counts": counts, "records": table}, handle, indent=1)
    with storage.atomic_write(json_url, "w", storage_options) as handle:
        json.dump(kecam_json(assignment, entries, root, {"aligned_from": settings["records"],
                                                         "counts": counts}), handle, indent=1)
    return json_url, report_url, csv_url


def read_report(out: str, storage_options: dict[str, Any] | None = None) -> dict | None:
    """The report of an earlier alignment written to `out`, or None."""
    _, report_url, _ = paths(out)
    fs, path = storage.filesystem(report_url, storage_options)
    if not fs.exists(path) or not fs.exists(storage.filesystem(out, storage_options)[1]):
        return None
    return json.loads(fs.cat_file(path))
