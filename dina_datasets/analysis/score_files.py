"""The score files of a bucket-shaped folder: finding them (and the stray files named like
them), selecting them by config, metric and activation, and the settings they were computed
with (`dina_datasets.runs.settings`), for the scores table (`analysis.scores`) and the
exports."""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import re
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dina_datasets import storage
from dina_datasets.errors import ConfigError, DinaWarning, LayoutError
from dina_datasets.layout import ACTIVATIONS, DEFAULT_ACTIVATION, Layout

CONCURRENCY = 16
NAMED = 10  # unknown files named in the warning; the rest are counted
# the activations written as `{metric}_scores.{activation}.json` (softmax is the published name)
NAMED_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a != DEFAULT_ACTIVATION)


@dataclass(frozen=True)
class ScoreFile:
    """One score file of the bucket."""

    model: str
    explainer: str
    metric: str
    activation: str
    url: str
    settings: str | None = None  # the URL of its settings file, when it has one

    @property
    def config(self) -> str:
        return f"{self.model}-{self.explainer}"


def _pattern(template: str) -> re.Pattern[str]:
    groups = {"{model}": "model", "{explainer}": "explainer", "{metric}": "metric",
              "{activation}": "activation"}
    parts = re.split(r"(\{model\}|\{explainer\}|\{metric\}|\{activation\})", template)
    regex = "".join(
        (f"(?P<{groups[p]}>[^/]+)" if p in ("{model}", "{explainer}") else
         f"(?P<{groups[p]}>[^/.]+)") if p in groups else re.escape(p) for p in parts)
    return re.compile(regex + "$")


def _other_patterns(layout: Layout) -> list[re.Pattern[str]]:
    """The layout's templates of files that are not score files (cost records, explanations,
    any template added later), as patterns: such files are known, not stray."""
    scores_templates = (layout.scores_template, layout.scores_activation_template)
    out = []
    for f in dataclasses.fields(layout):
        template = getattr(layout, f.name)
        if f.name.endswith("_template") and template not in scores_templates:
            regex = re.sub(r"\\\{[a-z]+\\\}", "[^/]+", re.escape(template))
            out.append(re.compile(regex + r"(\..*)?$"))  # and sidecars (`.index.json`...)
    return out


def find_score_files(data_url: str, storage_options: dict[str, Any] | None = None, *,
                     layout: Layout | None = None, strict: bool = False) -> list[ScoreFile]:
    """Every score file under `data_url`, published (`{Metric}_scores.json`, activation
    "softmax") and per activation (`{Metric}_scores.{activation}.json`), sorted.

    A file named like a score file that is none (`Insertion_scores.backup.json`: an unknown
    activation; `Insertion_scores.softmax.json`: softmax scores are published as
    `Insertion_scores.json`) is skipped with one `DinaWarning` naming every such file; with
    `strict`, a LayoutError naming them instead."""
    layout = layout or Layout(data_url)
    fs, root = storage.filesystem(data_url, storage_options)
    if not fs.exists(root):
        raise LayoutError(f"no folder at {data_url}")
    base = root.rstrip("/")
    found: dict[tuple[str, str, str, str], ScoreFile] = {}
    candidates: set[str] = set()
    kept: set[str] = set()
    for template, fixed in ((layout.scores_template, DEFAULT_ACTIVATION),
                            (layout.scores_activation_template, None)):
        pattern = _pattern(template)
        glob = template.format(model="*", explainer="*", metric="*", activation="*")
        for path, info in fs.glob(posixpath.join(base, glob), detail=True).items():
            relative = posixpath.relpath(path, base or "/")
            candidates.add(relative)
            # a folder named like a score file is no score file: stray, named in the warning
            match = pattern.match(relative) if info.get("type") != "directory" else None
            activation = fixed or (match["activation"] if match else "")
            # the published activation has one name only: `{metric}_scores.softmax.json`
            # is never written (`Layout.scores`), so it is a stray file, not a score file
            if not match or activation not in (ACTIVATIONS if fixed else NAMED_ACTIVATIONS):
                continue
            key = (match["model"], match["explainer"], match["metric"], activation)
            found[key] = ScoreFile(*key, layout.scores(*key))
            kept.add(relative)
    for key in _settings_present(fs, base, layout).intersection(found):
        found[key] = dataclasses.replace(found[key], settings=layout.settings(*key))
    others = _other_patterns(layout)
    unknown = sorted(c for c in candidates - kept if not any(p.match(c) for p in others)
                     and not any(c.startswith(k + ".") for k in kept))  # a file's sidecar
    if unknown:
        _report_unknown(unknown, data_url, layout, strict)
    return [found[k] for k in sorted(found)]


def _settings_present(fs: Any, base: str, layout: Layout) -> set[tuple[str, str, str, str]]:
    """(model, explainer, metric, activation) of every settings file under `base`."""
    pattern = _pattern(layout.settings_template)
    glob = layout.settings_template.format(model="*", explainer="*", metric="*",
                                           activation="*")
    found = set()
    for path in fs.glob(posixpath.join(base, glob)):
        match = pattern.match(posixpath.relpath(path, base or "/"))
        if match and match["activation"] in ACTIVATIONS:
            found.add((match["model"], match["explainer"], match["metric"],
                       match["activation"]))
    return found


def settings_ids(files: list[ScoreFile], storage_options: dict[str, Any] | None = None,
                 concurrency: int = CONCURRENCY) -> tuple[dict[str, str], dict[str, dict]]:
    """The settings id of each file (by URL; "published" without a settings file, "unknown"
    with an unreadable one, and a DinaWarning) and what each id stands for."""
    from dina_datasets.errors import FormatError
    from dina_datasets.runs import settings

    def read(file: ScoreFile) -> dict | None:
        try:
            return settings.read(file.settings, storage_options)
        except FormatError as err:
            warnings.warn(f"{err}: the scores of {file.url} count as of unknown settings",
                          DinaWarning, stacklevel=4)
            return {"id": "unknown"}

    ids = {f.url: settings.PUBLISHED for f in files}
    described: dict[str, dict] = {}
    with_settings = [f for f in files if f.settings]
    if with_settings:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            for file, record in zip(with_settings, pool.map(read, with_settings),
                                    strict=True):
                if record is None:  # removed since the listing
                    continue
                ids[file.url] = record["id"]
                described[record["id"]] = {k: record.get(k) for k in settings.COMPARED
                                           if k in record}
    return ids, described


def _report_unknown(unknown: list[str], data_url: str, layout: Layout, strict: bool) -> None:
    names = ", ".join(unknown[:NAMED]) + (f" and {len(unknown) - NAMED} more"
                                          if len(unknown) > NAMED else "")
    valid = (f"score files are named {layout.scores_template} or "
             f"{layout.scores_activation_template} with activation one of "
             f"{', '.join(NAMED_ACTIVATIONS)}; {DEFAULT_ACTIVATION} scores are "
             f"{layout.scores_template}")
    if strict:
        raise LayoutError(f"{len(unknown)} unknown file(s) under {data_url}: {names} ({valid});"
                          " move them away, or drop --strict to skip them")
    warnings.warn(f"skipped {len(unknown)} unknown file(s) under {data_url}: {names} ({valid})",
                  DinaWarning, stacklevel=3)


def select(files: list[ScoreFile], configs: Iterable[str] | None = None,
           metrics: Iterable[str] | None = None, activations: Iterable[str] | None = None
           ) -> list[ScoreFile]:
    """The files whose config, metric and activation match the given names or shell
    patterns (case-insensitive); ConfigError for a name that matches nothing."""
    for kind, wanted, attr in (("config", configs, "config"), ("metric", metrics, "metric"),
                               ("activation", activations, "activation")):
        if not wanted:
            continue
        wanted = list(wanted)
        present = sorted({getattr(f, attr) for f in files})
        for name in wanted:
            if not any(fnmatch.fnmatch(p.lower(), name.lower()) for p in present):
                raise ConfigError(f"no score files of {kind} {name!r}; present: "
                                  f"{', '.join(present) or 'none'}")
        files = [f for f in files if any(fnmatch.fnmatch(getattr(f, attr).lower(), n.lower())
                                         for n in wanted)]
    return files
