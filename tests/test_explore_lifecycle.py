"""`dina explore` leaves nothing behind: stopped by SIGTERM (as containers and service
managers stop it) its renderer processes, the multiprocessing helper and its temporary
folder (the scores table it built) are gone; killed outright (SIGKILL), its children notice
and exit within seconds. A real `dina explore` in a subprocess, its processes read from
/proc (Linux)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import make_bucket
from gcs_server import free_port

CONFIGS = ["ResNet50-Saliency", "ResNet50-Rise"]


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a live process; None when gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in "ZX":
        return None
    return int(fields[1]), fields[0], int(fields[19])


def _descendants(pid: int) -> dict[int, int]:
    """{pid: start time} of every live descendant of `pid`."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (got := _stat(int(entry))):
            parents[int(entry)] = got
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, start) in parents.items():
            if ppid == parent and child not in found:
                found[child] = start
                todo.append(child)
    return found


def _alive(processes: dict[int, int]) -> list[int]:
    """The processes of `processes` still running (same pid and start time)."""
    return [pid for pid, start in processes.items()
            if (got := _stat(pid)) is not None and got[2] == start]


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f} s: {what}")
        time.sleep(0.2)


@pytest.fixture
def started(tmp_path):
    """A `dina explore` over a tiny bucket, serving, with its own TMPDIR; yields
    (process, its descendants, TMPDIR)."""
    root = str(tmp_path / "bucket")
    make_bucket(root, CONFIGS, n=4, keys=True)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    env = dict(os.environ, TMPDIR=str(tmp), TF_CPP_MIN_LOG_LEVEL="3")
    code = "import sys; from dina_datasets.cli import main; sys.exit(main())"
    process = subprocess.Popen([sys.executable, "-c", code, "explore", "--data-url", root,
                                "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def serving() -> bool:
        assert process.poll() is None, process.stdout.read()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return True
        except OSError:
            return False

    try:
        _until(serving, 180, "the explorer never answered")
        children = _descendants(process.pid)
        assert len(children) >= 2, children  # renderers (and the multiprocessing helper)
        assert [p.name for p in tmp.iterdir() if p.name.startswith("dina-explore-")]
        yield process, children, tmp
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
        process.stdout.close()
        for pid in _alive(_descendants(process.pid)):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_children_and_removes_the_temporary_folder(started, stop):
    # stopped while a view is drawn; the maps it served used to stay in $TMPDIR/gradio
    # (Gradio's cache of every picture of the session)
    import threading

    from gradio_client import Client

    process, children, tmp = started
    port = process.args[process.args.index("--port") + 1]
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    assert len(client.predict("ResNet50", 0, api_name="/sample")) == 4
    replies = []
    request = threading.Thread(target=lambda: replies.append(
        _quietly(client.predict, "ResNet50", 1, api_name="/sample")))
    request.start()
    process.send_signal(stop)  # while the second view is drawn, or just after
    assert process.wait(timeout=60) == 0
    request.join(60)
    assert replies  # answered or cancelled, never left hanging
    _until(lambda: not _alive(children), 30, f"children left: {_alive(children)}")
    assert sorted(p.name for p in tmp.iterdir()) == [], f"left in TMPDIR by {stop!r}"


def _quietly(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except Exception as error:  # the server stopping cancels it: that is an answer too
        return error


def test_children_exit_when_the_explorer_is_killed(started):
    process, children, tmp = started
    process.kill()
    process.wait(timeout=60)
    _until(lambda: not _alive(children), 20, f"children left: {_alive(children)}")
    # the renderers also remove the explorer's own temporary folder on their way out
    _until(lambda: not [p for p in tmp.iterdir() if p.name.startswith("dina-explore-")],
           20, "temporary folder left after SIGKILL")
    assert not (tmp / "gradio").exists()  # Gradio's cache was inside it


def test_one_worker_explorer_killed_leaves_no_temporary_folder(tmp_path):
    # with one render worker (a 1-CPU machine) maps are drawn in-process: nobody was left to
    # remove the temporary folder after a SIGKILL
    folder = tmp_path / "dina-explore-x"
    folder.mkdir()
    (folder / "scores.parquet").write_bytes(b"PAR1")
    code = ("import sys, time; from dina_datasets.explore.renderers import Renderers; "
            f"r = Renderers(1, orphan_folder={str(folder)!r}); print('up', flush=True); "
            "time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "up"
        children = _descendants(process.pid)
        assert len(children) == 1, children  # the watchdog
        process.kill()
        process.wait(timeout=60)
        _until(lambda: not _alive(children), 20, f"watchdog left: {_alive(children)}")
        assert not folder.exists()
    finally:
        process.kill()
        process.wait(timeout=60)
        process.stdout.close()


def test_a_closed_one_worker_renderer_stops_its_watchdog(tmp_path):
    from dina_datasets.explore.renderers import Renderers

    folder = tmp_path / "kept"
    folder.mkdir()
    before = _descendants(os.getpid())
    renderers = Renderers(1, orphan_folder=str(folder))
    children = {p: t for p, t in _descendants(os.getpid()).items() if p not in before}
    assert len(children) == 1, children
    renderers.close()
    assert not _alive(children) and folder.exists()  # closing is not dying: the caller's
