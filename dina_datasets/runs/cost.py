"""Cost records: what `dina generate` and `dina evaluate` spent, written beside their outputs
(format `dina-cost/1`, JSON). `dina_datasets.analysis.cost` reads them back into a table.

- generation: one per part, gathered at the merge into the generation manifest beside the
  maps (`{model}/{explainer}/explanations.tfrecord.manifest.json`, key `cost`): `part`,
  `images`, `wall_seconds` (the part from its first batch to its file's rename),
  `explain_seconds` (inside the explainer only), `seconds_per_image` = explain_seconds /
  images, `batch_size`, `device`, `versions`, `shard`;
- evaluation: one per score file, `Layout.cost(model, explainer, metric, activation)`:
  `images`, `seconds` (inside the metric only: the forward passes and re-explanations it
  makes), `seconds_per_image`, `wall_seconds` (the whole evaluate run until that file was
  written, shared by the metrics of the run), `batch_size`, `device`, `versions`.

`device` is "GPU: <name>" when TensorFlow sees a GPU, else "CPU: <processor>"; `versions`
holds the versions of python and of the libraries that do the work. Nothing here imports
TensorFlow unless it is already imported.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import sys
from typing import Any

from dina_datasets.errors import ConfigError
from dina_datasets.runs import records

FORMAT = "dina-cost/1"
LIBRARIES = ("dina-datasets", "numpy", "scipy", "tensorflow", "tf-keras",
             "keras-cv-attention-models", "xplique")
KINDS = ("generate", "evaluate")


def versions() -> dict[str, str]:
    """Versions of python and of the installed libraries that explain and score."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device() -> str:
    """"GPU: <name>" of the first GPU TensorFlow sees (when it is imported), else
    "CPU: <processor> (<n> cores)"."""
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        try:
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                name = details.get("device_name") or gpus[0].name
                return f"GPU: {name}" + (f" (x{len(gpus)})" if len(gpus) > 1 else "")
        except Exception:  # a broken GPU runtime must not stop a run from recording it
            pass
    return f"CPU: {_cpu_name()} ({os.cpu_count()} cores)"


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """`device` and `versions` of this process, as the records store them (looked up once
    per process: call it after TensorFlow is imported)."""
    return {"device": device(), "versions": versions()}


def record(kind: str, *, images: int, seconds: float, batch_size: int, **fields: Any
           ) -> dict[str, Any]:
    """A cost record: `seconds` spent on `images` images (seconds_per_image derived), with
    this process's device and versions and the other `fields`."""
    if kind not in KINDS:
        raise ConfigError(f"cost kind must be one of {KINDS}, got {kind!r}")
    key = "explain_seconds" if kind == "generate" else "seconds"
    return {"format": FORMAT, "kind": kind, "images": int(images), key: float(seconds),
            "seconds_per_image": float(seconds) / images if images else None,
            "batch_size": int(batch_size), **environment(),
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **fields}


def write(url: str, data: dict[str, Any], storage_options: dict[str, Any] | None = None
          ) -> None:
    """Write a cost record atomically."""
    records.write(url, data, storage_options)


def read(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A cost record, None when the file is missing; FormatError when it does not parse."""
    return records.read(url, FORMAT, "cost record", storage_options)
