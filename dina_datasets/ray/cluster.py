"""The Ray cluster a command runs on: joined at an address, or started on this machine, and
what its workers may ask for."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from collections.abc import Iterator
from types import ModuleType

from dina_datasets.errors import ConfigError, check_positive_int
from dina_datasets.ray import require

PROBE_SECONDS = 5.0


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of "host:port" or "ray://host:port"; None for "auto"."""
    if address == "auto":
        return None
    bare = address.split("://", 1)[1] if address.startswith("ray://") else address
    host, sep, port = bare.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address must look like HOST:PORT (e.g. 10.0.0.5:6379, as `ray "
                          f"start --head` prints), ray://HOST:PORT or auto; got {address!r}")
    return host.strip("[]"), int(port)


def _probe(address: str) -> None:
    """A clear error, within seconds, when nothing listens at `address`."""
    target = _host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=PROBE_SECONDS).close()
    except OSError as err:
        raise ConfigError(f"no Ray cluster answers at {address!r} ({err.strerror or err}): give "
                          "the head node's address (HOST:PORT, as `ray start --head` prints) "
                          "or leave out --address to start a cluster on this machine") from None


@contextlib.contextmanager
def connect(address: str | None = None) -> Iterator[ModuleType]:
    """Ray, connected to the cluster at `address` (or to a new one on this machine when
    None) for the duration of the block. A process already connected keeps its cluster."""
    ray = require()
    if address:
        _probe(address)
    if ray.is_initialized():
        if address and address != "auto" and _host_port(address) != _host_port(
                ray.get_runtime_context().gcs_address):
            raise ConfigError(f"this process is already connected to the Ray cluster at "
                              f"{ray.get_runtime_context().gcs_address}, not {address!r}")
        yield ray
        return
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(include_dashboard=False, logging_level=logging.WARNING)
    except ConnectionError as err:
        raise ConfigError(f"cannot join the Ray cluster at {address!r}: {err}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def fit_workers(ray: ModuleType, workers: int | None, gpus_per_worker: float,
                cpus_per_worker: float = 1.0) -> int:
    """How many workers the cluster holds at once (`workers` when given, checked); a
    ConfigError when it cannot hold one."""
    check_positive_int("--workers", workers, allow_none=True)
    if gpus_per_worker < 0:
        raise ConfigError(f"--gpus-per-worker must be 0 or more, got {gpus_per_worker!r}")
    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    described = f"the Ray cluster has {cpus:g} CPU(s) and {gpus:g} GPU(s)"
    if gpus_per_worker > gpus:
        raise ConfigError(f"--gpus-per-worker {gpus_per_worker:g}: {described}; run on a "
                          "cluster with GPUs or leave out --gpus-per-worker")
    fit = math.floor(gpus / gpus_per_worker) if gpus_per_worker else \
        math.floor(cpus / cpus_per_worker)
    if fit < 1:
        raise ConfigError(f"a worker needs {cpus_per_worker:g} CPU(s): {described}")
    if workers is not None and workers > fit:
        raise ConfigError(f"--workers {workers}: {described}, room for {fit} worker(s) of "
                          f"{cpus_per_worker:g} CPU(s) and {gpus_per_worker:g} GPU(s)")
    return workers or fit
