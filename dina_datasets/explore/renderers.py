"""The processes that draw the explorer's maps: each panel drawn alone, as
`dina show CONFIG --index I` draws it, by a pool of spawned processes (matplotlib draws one
figure at a time in a process), or in-process under a lock when there is one worker."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ProcessPoolExecutor

from dina_datasets.viz import figures


def render(panel: figures.Panel) -> bytes:
    """One panel drawn alone, as `dina show CONFIG --index I` draws it (a renderer keeps
    its figure and refills it: the same pixels in 60 % of the time)."""
    return figures.render([[panel]], reuse=True)


def _warm(_: int = 0) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return os.getpid()


class Renderers:
    """Draws panels to PNG bytes: `workers` spawned processes, or this process when
    `workers` <= 1."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            import multiprocessing

            self._pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"))

    def warm(self) -> None:
        """Start every process and import matplotlib there now, not on the first view."""
        if self._pool is not None:
            list(self._pool.map(_warm, range(self.workers)))

    def draw(self, panel: figures.Panel) -> bytes:
        """The PNG bytes of one panel."""
        if self._pool is None:
            with self._lock:  # matplotlib draws one figure at a time in a process
                return render(panel)
        return self._pool.submit(render, panel).result()

    def close(self) -> None:
        """Stop the processes (work not started is cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
