"""ReadAhead: ordered results computed ahead, carried across calls that follow each other."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading

import pytest

from dina_datasets.hf.readahead import ReadAhead


class Calls:
    def __init__(self):
        self.keys = []
        self.lock = threading.Lock()

    def __call__(self, key):
        with self.lock:
            self.keys.append(key)
        if key == "bad":
            raise ValueError("bad key")
        return key * 10


def test_results_come_in_order():
    fn, ahead = Calls(), ReadAhead(3)
    assert list(ahead.map(fn, list(range(20)))) == [k * 10 for k in range(20)]
    assert sorted(fn.keys) == list(range(20))
    assert list(ahead.map(fn, [])) == []


def test_the_chunk_after_a_call_is_read_once_for_a_call_that_follows():
    fn, ahead = Calls(), ReadAhead(2)
    assert list(ahead.map(fn, [0, 1], start=0, stop=2, following=2)) == [0, 10]
    assert fn.keys == [0, 1]  # a first call is not known to be followed: no guess
    assert list(ahead.map(fn, [2, 3], start=2, stop=4, following=4)) == [20, 30]
    assert list(ahead.map(fn, [4, 5], start=4, stop=6, following=6)) == [40, 50]
    assert sorted(fn.keys) == [0, 1, 2, 3, 4, 5, 6]  # 4 once (guessed), 6 guessed
    assert list(ahead.map(fn, [9], start=9, stop=10, following=10)) == [90]
    assert fn.keys.count(9) == 1 and 10 not in fn.keys  # out of order: the guess is dropped


def test_errors_reach_the_caller_and_stop_the_map():
    fn, ahead = Calls(), ReadAhead(2)
    results = ahead.map(fn, [1, "bad", 3])
    assert next(results) == 10
    with pytest.raises(ValueError, match="bad key"):
        next(results)
    assert list(ahead.map(fn, [4])) == [40]  # the pool still works


FORKED = """
import os, sys
sys.path.insert(0, sys.argv[1])
from test_readahead import Calls
from dina_datasets.hf.readahead import ReadAhead

ahead = ReadAhead(2)
list(ahead.map(Calls(), [0], start=0, stop=1, following=1))  # the parent's threads started
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # the child must not wait on the parent's threads
    try:
        ok = list(ahead.map(Calls(), [1, 2], start=1, stop=3)) == [10, 20]
    finally:
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
os.waitpid(pid, 0)
print(os.read(read, 1).decode())
"""


def test_a_copy_or_a_forked_child_starts_afresh():
    ahead = ReadAhead(2)
    list(ahead.map(Calls(), [0], start=0, stop=1, following=1))
    copy = pickle.loads(pickle.dumps(ahead))
    assert copy.threads == 2 and copy._pool is None and copy._guess is None
    # the fork happens in a fresh interpreter, as in a user's script: this process may hold
    # TensorFlow's and Ray's threads, and a fork of it can crash the child for their reasons
    done = subprocess.run([sys.executable, "-c", FORKED, os.path.dirname(__file__)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1"
