"""TensorFlow as this package uses it: imported once, legacy Keras, its devices initialised
with a quiet console.

On a machine without an NVIDIA driver, TensorFlow's CUDA build logs `failed call to cuInit:
... CUDA error (303)` (an error-level line, shown even at TF_CPP_MIN_LOG_LEVEL=2) when it
looks for GPUs, then runs on the CPU as asked. `tensorflow()` initialises the devices with
the process's stderr passed through a filter that drops that one line when no driver is
installed; every other line (and the cuInit line itself when a driver is there: then it is a
real error) passes unchanged.

TensorFlow also warns "N out of the last N calls to <function ...> triggered tf.function
retracing" when one process builds several models: each config builds its own model, so its
prediction function and xplique's gradient functions (`GradCAM._gradient`,
`get_gradient_of_operator`, traced per model) are traced once per model, which is expected
and not the repeated tracing the warning is about. Our own functions are traced once per
model and input shape (`metrics.base.Forward`); `RetracingFilter` drops that one warning
from the `tensorflow` logger, every other message passes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

CUINIT = b"failed call to cuInit"
DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl")


def has_nvidia_driver() -> bool:
    """Whether an NVIDIA driver is installed (then a cuInit failure is a real error)."""
    return any(os.path.exists(path) for path in DRIVER_FILES)


@contextlib.contextmanager
def dropping(text: bytes) -> Iterator[None]:
    """Drop the lines holding `text` that are written to file descriptor 2 (C++ logs
    included) inside the block; the other lines pass, in order."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded, closed)
        yield
        return
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def pump() -> None:
        with os.fdopen(read, "rb") as source:
            for line in source:
                if text not in line:
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="dina-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last writer: the pump reads to its end
        thread.join(timeout=10)
        os.close(saved)


class RetracingFilter(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning (see the module
    docstring); every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def without(*names: str) -> Iterator[None]:
    """Inside the block, `import name` fails with ImportError for each of `names` that the
    process has not imported yet (an optional import skipped); afterwards they import as usual.
    """
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  (the import system's "absent")
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


@functools.lru_cache(maxsize=1)
def tensorflow() -> Any:
    """The `tensorflow` module, its physical devices listed once (the GPU probe) with the
    expected cuInit line dropped on a machine without an NVIDIA driver."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet = dropping(CUINIT) if not has_nvidia_driver() else contextlib.nullcontext()
    with quiet, without("jax"):
        import tensorflow as tf

        tf.config.list_physical_devices()
    logger = tf.get_logger()
    if not any(isinstance(f, RetracingFilter) for f in logger.filters):
        logger.addFilter(RetracingFilter())
    return tf
