"""A window of ranged requests in flight: a pool of threads that one reader submits its reads
to (gcsfs serves concurrent calls of several threads on its one event loop; local reads
release the GIL), at most `size` of them running, results taken in order."""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from dina_datasets.errors import check_positive_int

# The default, measured by benchmarks/remote.py (2 shared cores): 4 -> 8 in flight +18 %,
# 8 -> 16 +12 %; 8 requests of 16 MB bound a stream's memory at 128 MB.
WINDOW = 8


class Window:
    """A pool of `size` threads for the ranged reads of one reader: at most `size` requests in
    flight (gcsfs serves the threads' calls concurrently on its event loop; local reads
    release the GIL). A pickled or forked copy starts with no threads."""

    def __init__(self, size: int = WINDOW) -> None:
        self.size = check_positive_int("window", size)
        self._reset()

    def _reset(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size = state["size"]
        self._reset()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's threads are not here
                self._reset()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="dina-fetch")
            pool = self._pool
        return pool.submit(fn, *args, **kwargs)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """fn(item) for each item, in order, `size` calls running ahead of the caller; calls
        not yet started are cancelled when the caller stops early."""
        ahead = iter(items)
        pending: deque[Future[Any]] = deque(self.submit(fn, item)
                                            for item in itertools.islice(ahead, self.size))
        try:
            while pending:
                result = pending.popleft().result()
                pending.extend(self.submit(fn, item) for item in itertools.islice(ahead, 1))
                yield result
        finally:
            for future in pending:
                future.cancel()

    def close(self, wait: bool = False) -> None:
        """Stop the threads: queued reads are dropped; running ones finish in the background,
        or before this returns with `wait`."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
