"""Read-ahead: chunk tasks computed on background threads ahead of the caller, in order, and
carried on past the end of a call when the calls walk the file in order.

`datasets` streams a config one virtual shard at a time (one `_generate_tables` call each), so
a read-ahead that stopped at the end of a call would drain and stall at every shard boundary.
When a call starts where the previous one stopped, the chunk after its end is read
speculatively, and the next call takes it if it starts there (otherwise it is dropped).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from typing import Any

from dina_datasets.readahead import Window


class ReadAhead:
    """Computes `fn(key)` for a list of keys on `threads` threads, `threads + 1` keys ahead of
    the caller (file reads, CRCs and numpy copies release the GIL), through the package's
    one read-ahead helper (`readahead.Window`).

    One per process and owner: pickling or forking gives a fresh one with no threads.
    """

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self._reset()

    def _reset(self) -> None:
        self._pool: Window | None = None
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
        pool = self._window()
        with self._lock:
            guess, self._guess = self._guess, None
            in_order = start is not None and start == self._last
            self._last = stop
        taker = None
        if guess is not None:
            if keys:
                taker = part(guess[0], keys[0]) if part else \
                    (None if guess[0] != keys[0] else _whole)
            if taker is None:
                guess[1].cancel()
        started = [guess[1]] if taker is not None else []

        def todo() -> Iterator[Hashable]:
            yield from keys[len(started):]
            if keys and in_order and following is not None:  # all submitted: guess the next
                with self._lock:
                    self._guess = (following, pool.submit(fn, following))

        results = pool.map(fn, todo(), ahead=self.threads + 1, started=started)
        try:
            for i, result in enumerate(results):
                yield taker(result) if i == 0 and taker is not None else result
        finally:
            results.close()  # the calls not started are cancelled

    def _window(self) -> Window:
        if self._pool is None:
            self._pool = Window(self.threads, name="dina-read")  # fork-safe itself
        return self._pool


def _whole(result: Any) -> Any:
    return result
