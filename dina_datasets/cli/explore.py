"""`dina explore`: a local web app to see maps beside their images and scores (Gradio).

SIGTERM and SIGHUP stop it as Ctrl+C does (containers and service managers stop with
SIGTERM): the server, the renderer processes and the temporary folder all go, with Gradio's
copies of the pictures it served (its cache is put in that folder unless GRADIO_TEMP_DIR is
set)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

from dina_datasets.layout import DEFAULT_DATA_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-url", default=DEFAULT_DATA_URL, metavar="URL",
                        help="bucket-shaped folder or URL (default: %(default)s)")
    parser.add_argument("--images", metavar="SRC",
                        help="the images (folder or kecam imagenet_data.json) to draw under "
                        "the maps; without it the maps are drawn alone")
    parser.add_argument("--imagenet-json", metavar="FILE",
                        help="kecam's imagenet_data.json of the cells: fills image ids and "
                        "labels of the scores table built at start")
    parser.add_argument("--scores", metavar="FILE",
                        help="a scores table (`dina scores --out FILE`); without it one is "
                        "built at start into a temporary folder, removed at exit")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from dina_datasets.errors import ConfigError

    extra = "dina explore needs the 'explore' extra ({} is missing): " \
        "pip install 'dina-datasets[explore]'"
    if importlib.util.find_spec("gradio") is None:
        raise ConfigError(extra.format("gradio"))
    from dina_datasets.explore.data import Explorer

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    check_port(args.host, args.port)  # before the scores table is built (minutes on the grid)
    explorer = Explorer(args.data_url, scores=args.scores, images=args.images,
                        imagenet_json=args.imagenet_json,
                        storage_options=args.storage_options)
    if explorer.owns_cache:  # Gradio's files (every map served) go with the explorer's own;
        # set before Gradio is imported, which reads it then
        os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(explorer.cache_dir, "gradio"))
    try:
        try:
            from dina_datasets.explore.app import launch
        except ImportError as err:
            raise ConfigError(extra.format(err.name)) from None
        with stop_signals_interrupt():
            explorer.open()
            if explorer.problem:
                print(f"dina explore: problem (shown in the page too): {explorer.problem}")
            demo = launch(explorer, host=args.host, port=args.port, block=False, quiet=True)
            print(f"dina explore: http://{args.host}:{args.port} (Ctrl+C stops)", flush=True)
            try:
                while demo.is_running:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                print("dina explore: stopping", flush=True)
            finally:
                demo.close()
    finally:
        explorer.close()
    return 0


def check_port(host: str, port: int) -> None:
    """ConfigError unless the server can listen on `host`:`port` now (as Gradio checks it)."""
    import socket

    from dina_datasets.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise ConfigError(f"--host {host!r} is not an address of this machine ({err})") from None
    family, kind, _, _, address = infos[0]
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror or err}): is "
                              "another program (an explorer?) using it? pass another --port"
                              ) from None


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, as Ctrl+C
    does, so that the same clean-up runs; the previous handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(number: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(number).name}")

    kinds = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {kind: signal.signal(kind, interrupt) for kind in kinds}
    try:
        yield
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, handler)
