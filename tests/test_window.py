"""The one read-ahead helper (`readahead`): ordered results, bounded memory, errors raised in
the consumer, a clean stop when the consumer stops early, a fresh pool after pickling."""

from __future__ import annotations

import pickle
import threading

import pytest

from dina_datasets.errors import DinaError
from dina_datasets.readahead import Window, prefetch


class Gate:
    """fn(item) that records the items started and blocks each until released."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.lock = threading.Lock()
        self.open = threading.Event()

    def __call__(self, item: int) -> int:
        with self.lock:
            self.started.append(item)
        if item == 13:
            raise ValueError("thirteen")
        self.open.wait(10)
        return item * 2


def test_map_is_in_order_and_bounded():
    window, gate = Window(2), Gate()
    results = window.map(gate, range(100), ahead=3)
    gate.open.set()
    assert next(results) == 0
    assert len(gate.started) <= 1 + 3  # the one handed out, three ahead
    assert [next(results) for _ in range(5)] == [2, 4, 6, 8, 10]
    results.close()
    window.close(wait=True)
    assert len(gate.started) <= 6 + 3


def test_an_error_reaches_the_consumer_at_its_item():
    window = Window(3)
    gate = Gate()
    gate.open.set()
    results = window.map(gate, range(20))
    assert [next(results) for _ in range(13)] == [2 * k for k in range(13)]
    with pytest.raises(ValueError, match="thirteen"):
        next(results)
    assert list(window.map(gate, [1, 2])) == [2, 4]  # the pool still works
    window.close()


def test_stopping_early_cancels_what_has_not_started():
    window, gate = Window(1), Gate()
    results = window.map(gate, range(1000), ahead=4)
    gate.open.set()
    next(results)
    results.close()
    window.close(wait=True)
    assert len(gate.started) <= 1 + 4


def test_a_pickled_window_starts_without_threads():
    window = Window(2)
    assert list(window.map(abs, [-1, -2])) == [1, 2]
    copy = pickle.loads(pickle.dumps(window))
    assert copy.size == 2 and copy._pool is None
    assert list(copy.map(abs, [-3])) == [3]
    window.close()


def test_a_bad_size_says_what_it_got():
    with pytest.raises(DinaError, match="window"):
        Window(0)


def test_prefetch_keeps_order_and_raises_the_producers_error():
    def produce():
        yield from range(5)
        raise ValueError("producer failed")

    got = []
    with pytest.raises(ValueError, match="producer failed"):
        for item in prefetch(produce(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    assert list(prefetch(iter(range(10)), depth=3)) == list(range(10))


def test_prefetch_stops_its_producer_when_the_consumer_stops():
    made = []

    def produce():
        for k in range(10_000):
            made.append(k)
            yield k

    items = prefetch(produce(), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    count = len(made)
    assert count <= 3 + 2 + 1
    assert not [t for t in threading.enumerate() if t.name.startswith("dina-prefetch")]
    assert len(made) == count
