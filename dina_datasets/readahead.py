"""Bounded read-ahead: the one helper behind every background read of the package.

- `Window`: a pool of threads that a reader submits its reads to (gcsfs serves concurrent
  calls of several threads on its one event loop; local reads, CRCs and numpy copies release
  the GIL). `Window.map` gives `fn(item)` for each item in order, at most `ahead` of them
  computed or in flight beyond the one the caller holds (memory stays bounded); an error is
  raised in the caller when it reaches that item; calls not yet started are cancelled when
  the caller stops early. A pickled or forked copy starts with no threads.
- `prefetch`: the items of an iterator produced on a worker thread, `depth` ahead.

Used by the record reader's chunk reads (`recordio.buffers.fetch`), the builder's decode
read-ahead (`hf.readahead`), the metrics' batches (`metrics.inputs`) and the scores table's
file reads (`analysis.scores.read_files`).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from dina_datasets.errors import check_positive_int


class Window:
    """A pool of `size` threads; at most `size` calls run at once."""

    def __init__(self, size: int, *, name: str = "dina-read") -> None:
        self.size = check_positive_int("window", size)
        self.name = name
        self._reset()

    def _reset(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size, self.name = state["size"], state.get("name", "dina-read")
        self._reset()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run fn(*args, **kwargs) on one of the threads (started on first use)."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's threads are not here
                self._reset()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.size, thread_name_prefix=self.name)
            pool = self._pool
        return pool.submit(fn, *args, **kwargs)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, ahead: int | None = None,
            started: Sequence[Future[Any]] = ()) -> Iterator[Any]:
        """fn(item) for each item, in order, up to `ahead` (default `size`) calls submitted
        ahead of the caller; `started`: futures already submitted whose results come first.
        Calls not yet started are cancelled when the caller stops early."""
        ahead = self.size if ahead is None else check_positive_int("ahead", ahead)
        todo = iter(items)
        pending: deque[Future[Any]] = deque(started)
        try:
            pending.extend(self.submit(fn, item)
                           for item in itertools.islice(todo, max(0, ahead - len(pending))))
            while pending:
                result = pending.popleft().result()
                pending.extend(self.submit(fn, item) for item in itertools.islice(todo, 1))
                yield result
        finally:
            for future in pending:
                future.cancel()

    def close(self, wait: bool = False) -> None:
        """Stop the threads: queued calls are dropped; running ones finish in the background,
        or before this returns with `wait`."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_END = object()


def prefetch(items: Iterable[Any], depth: int = 1) -> Iterator[Any]:
    """The items of `items`, produced on a worker thread up to `depth` ahead of the caller;
    an error of the producer is raised in the caller; stopping early stops the producer
    (its item in progress is finished first)."""
    source = iter(items)
    window = Window(1, name="dina-prefetch")  # one thread: `source` advances in order
    results = window.map(lambda _: next(source, _END), itertools.repeat(None), ahead=depth)
    try:
        for item in results:
            if item is _END:
                return
            yield item
    finally:
        results.close()  # cancels the calls not started
        window.close(wait=True)
