"""The processes that draw the explorer's maps: each panel drawn alone, as
`dina show CONFIG --index I` draws it, by a pool of spawned processes (matplotlib draws one
figure at a time in a process), or in-process under a lock when there is one worker.

A renderer never outlives the explorer: `close` stops them, and each one watches its parent
and exits when it is gone (killed outright: SIGKILL, the OOM killer), removing on its way the
explorer's temporary folder, which nobody else is left to remove. (A watchdog rather than
Linux's `PR_SET_PDEATHSIG`: that signal follows the thread that started the process, and the
pool starts renderers from whichever thread needs one.) With one worker the panels are drawn
in-process and a small watchdog process (no imports beyond the standard library) does only
that: it removes the folder when the explorer is gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from dina_datasets.viz import figures


def render(panel: figures.Panel) -> bytes:
    """One panel drawn alone, as `dina show CONFIG --index I` draws it (a renderer keeps
    its figure and refills it: the same pixels in 60 % of the time)."""
    return figures.render([[panel]], reuse=True)


WATCH_SECONDS = 0.5  # how often a renderer checks that its parent is alive


def _watch(parent: int, folder: str | None) -> None:
    """In a renderer: a daemon thread that ends this process (and removes `folder`) as soon
    as its parent `parent` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_SECONDS)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        os._exit(0)

    threading.Thread(target=watch, name="dina-parent-watch", daemon=True).start()


# The watchdog of an in-process renderer: argv = parent pid, folder. It ends with its parent
# (removing the folder) or when `Renderers.close` stops it.
WATCHDOG = f"""
import os, shutil, sys, time
parent, folder = int(sys.argv[1]), sys.argv[2]
while os.getppid() == parent:
    time.sleep({WATCH_SECONDS!r})
shutil.rmtree(folder, ignore_errors=True)
"""


def _warm(_: int = 0) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return os.getpid()


class Renderers:
    """Draws panels to PNG bytes: `workers` spawned processes, or this process when
    `workers` <= 1. `orphan_folder`: a folder the renderers remove if the parent dies
    without closing them (the parent's own temporary folder)."""

    def __init__(self, workers: int, orphan_folder: str | None = None) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._watchdog: subprocess.Popen | None = None
        if workers <= 1 and orphan_folder:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-I", "-c", WATCHDOG, str(os.getpid()), orphan_folder],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if workers > 1:
            import multiprocessing

            self._pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_watch, initargs=(os.getpid(), orphan_folder))

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
        """Stop the processes and wait for them (work not started is cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
