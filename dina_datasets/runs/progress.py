"""The progress of a long run, as a terminal sees it or as a log does.

`progress(True)`: tqdm's bar (a terminal). `progress(seconds)`: the same tqdm status as a plain
line every `seconds` (stderr is a log file or a pipe, where a bar redrawn with carriage
returns would print nothing readable for minutes), and once more at the end. `progress(False)`:
nothing. `each` runs a command's cells and, on Ctrl-C, says what is kept and that a re-run
resumes.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

LOG_INTERVAL = 30.0  # seconds between two lines when stderr is not a terminal
QUIET = 1e9  # tqdm's own printing intervals when the lines come from the ticker


class _Lines:
    """A stream for tqdm that writes each status as a line of its own."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def mode(enabled: bool, interval: float = LOG_INTERVAL, stream: Any = None) -> bool | float:
    """What `progress` should show for a command: a bar on a terminal, lines every
    `interval` seconds elsewhere, nothing when not `enabled`."""
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        return False
    isatty = getattr(stream, "isatty", None)
    return True if isatty is not None and isatty() else float(interval)


@contextlib.contextmanager
def progress(show: bool | float, total: int, desc: str, unit: str) -> Iterator[Any]:
    """A tqdm bar (`show` True), plain lines every `show` seconds (a number), or a silent
    one (False); `update(n)` it as work is done."""
    from tqdm import tqdm

    if show is True or show is False:
        with tqdm(total=total, unit=unit, desc=desc, disable=not show) as bar:
            yield bar
        return
    interval = max(float(show), 0.01)
    stop = threading.Event()
    # Lines come from the clock alone (the ticker), never from an update: an update that
    # printed too would add a second line at a random moment of each interval.
    with tqdm(total=total, unit=unit, desc=desc, file=_Lines(sys.stderr), ascii=True,
              ncols=100, mininterval=QUIET, maxinterval=QUIET) as bar:
        def tick() -> None:
            while not stop.wait(interval):
                bar.refresh()

        ticker = threading.Thread(target=tick, name="dina-progress", daemon=True)
        ticker.start()
        try:
            yield bar
        finally:
            stop.set()
            ticker.join()


def each(items: Iterable[Any], call: Callable[[Any], Any], command: str, kept: str
         ) -> tuple[list[Any], bool]:
    """`call(item)` for each item, in order: (the results, False); on Ctrl-C, (the results
    so far, True) and a line on stderr saying what is `kept` and that a re-run resumes."""
    results: list[Any] = []
    try:
        for item in items:
            results.append(call(item))
    except KeyboardInterrupt:
        print(f"{command}: interrupted; {kept}: re-run the same command to resume",
              file=sys.stderr)
        return results, True
    return results, False
