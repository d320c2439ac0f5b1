"""The progress of a Ray run: parts done / total, images (or maps) per second and ETA
across the cluster, drawn by tqdm (a bar on a terminal, plain lines otherwise)."""

from __future__ import annotations

import sys
import time
from typing import Any

from dina_datasets.runs.progress import LOG_INTERVAL as LOG_EVERY


class Progress:
    """Parts done / total, images (or maps) per second and ETA, across the cluster, drawn by
    tqdm: a bar on a terminal, a line (`LINE`) at most every LOG_EVERY seconds otherwise,
    and one at the end."""

    LINE = "parts {parts}, {average:.2f} {unit}/s, ETA {eta} ({workers} worker(s))"

    def __init__(self, parts: int, items: int, unit: str, workers: int, show: bool) -> None:
        self.parts, self.done_parts, self.workers = parts, 0, workers
        terminal = sys.stderr.isatty()
        self.bar = _bar(self)(
            total=items, unit=unit, desc=f"ray, {workers} worker(s)", disable=not show,
            file=sys.stderr if terminal else _Lines(), smoothing=0 if not terminal else 0.3,
            mininterval=0.1 if terminal else LOG_EVERY, miniters=1, leave=terminal,
            bar_format=None if terminal else self.LINE)

    def update(self, items: int) -> None:
        self.done_parts += 1
        if self.bar.disable:
            return
        self.bar.set_postfix_str(f"parts {self.done_parts}/{self.parts}", refresh=False)
        self.bar.update(items)
        if self.done_parts == self.parts and self.bar.last_print_n < self.bar.n:
            self.bar.refresh()  # the last line, whatever the interval

    def close(self) -> None:
        self.bar.close()


def _bar(progress: Progress) -> type:
    """tqdm, with the fields of `Progress.LINE`: parts done, average rate, ETA (H:M:S)."""
    from tqdm import tqdm

    class Bar(tqdm):
        @property
        def format_dict(self) -> dict[str, Any]:
            found = super().format_dict
            n, total, elapsed = found["n"], found["total"] or 0, found["elapsed"]
            average = n / elapsed if elapsed > 0 else 0.0
            eta = time.strftime("%H:%M:%S", time.gmtime((total - n) / average)) \
                if average > 0 else "?"
            return {**found, "average": average, "eta": eta, "workers": progress.workers,
                    "parts": f"{progress.done_parts}/{progress.parts}"}

    return Bar


class _Lines:
    """A file for tqdm off a terminal: each refresh is a line of its own on stderr."""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            print(line, file=sys.stderr, flush=True)

    def flush(self) -> None:
        sys.stderr.flush()
