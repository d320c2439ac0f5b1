"""Read-ahead: chunk tasks computed on background threads ahead of the caller, in order, and
carried on past the end of a call when the calls walk the file in order.

`datasets` streams a config one virtual shard at a time (one `_generate_tables` call each), so
a read-ahead that stopped at the end of a call would drain and stall at every shard boundary.
When a call starts where the previous one stopped, the chunk after its end is read
speculatively, and the next call takes it if it starts there (otherwise it is dropped).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class ReadAhead:
    """Computes `fn(key)` for a list of keys on `threads` threads, `threads + 1` keys ahead of
    the caller (file reads, CRCs and numpy copies release the GIL).

    One per process and owner: pickling or forking gives a fresh one with no threads.
    """

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self._reset()

    def _reset(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._guess: tuple[Hashable, Future[Any]] | None = None
        self._last: Hashable | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.threads = state["threads"]
        self._reset()

    def map(self, fn: Callable[[Hashable], Any], keys: list[Hashable], *,
            start: Hashable = None, stop: Hashable = None, following: Hashable = None,
            part: Callable[[Hashable, Hashable], Callable[[Any], Any] | None] | None = None
            ) -> Iterator[Any]:
        """fn(key) for each key, in order.

        `start` and `stop` say where the keys begin and end in the file; when `start` is where
        the previous call's `stop` was, `fn(following)` is computed after the last key, for a
        next call that starts there. That call takes the guessed result for its first key if
        `part(following, key)` gives a function that takes the key's result out of it (by
        default only an equal key's result is taken, whole).
        """
        pool = self._executor()
        with self._lock:
            guess, self._guess = self._guess, None
            in_order = start is not None and start == self._last
            self._last = stop
        pending: deque[tuple[Future[Any], Callable[[Any], Any] | None]] = deque()
        ahead = iter(enumerate(keys))
        if guess is not None:
            taker = None
            if keys:
                taker = part(guess[0], keys[0]) if part else \
                    (None if guess[0] != keys[0] else _whole)
            if taker is None:
                guess[1].cancel()
            else:
                pending.append((guess[1], taker))
                next(ahead)

        def submit(count: int) -> None:
            for i, key in itertools.islice(ahead, count):
                pending.append((pool.submit(fn, key), None))
                if i == len(keys) - 1 and in_order and following is not None:
                    with self._lock:
                        self._guess = (following, pool.submit(fn, following))

        try:
            submit(self.threads + 1 - len(pending))
            while pending:
                future, taker = pending.popleft()
                result = future.result()
                submit(1)
                yield taker(result) if taker else result
        finally:
            for future, _ in pending:
                future.cancel()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pid != os.getpid():  # a forked child: the parent's threads are not here
            self._reset()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="dina-read")
        return self._pool


def _whole(result: Any) -> Any:
    return result
