"""The network check of remote URLs: one DNS lookup and one TCP connect per endpoint and
process, bounded in time, instead of gcsfs's own back-off on an unreachable endpoint; and
the offline switch as `datasets` reads it."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
import urllib.parse
from typing import Any

from dina_datasets.errors import NetworkError

# Network check: gcsfs retries a DNS failure or a refused connection 6 times with back-off
# (~35 s measured here) and then raises aiohttp's own error. One DNS lookup and one TCP
# connect to the endpoint, bounded by CONNECT_TIMEOUT seconds in all, fail at once instead.
CONNECT_TIMEOUT = 10.0
ENDPOINTS = {"gs": "https://storage.googleapis.com", "gcs": "https://storage.googleapis.com",
             "s3": "https://s3.amazonaws.com", "s3a": "https://s3.amazonaws.com",
             "hf": "https://huggingface.co"}
_REACHED: set[tuple[str, int]] = set()
_TRUE = frozenset({"1", "ON", "YES", "TRUE"})


def offline() -> bool:
    """Offline mode as `datasets` reads it: HF_DATASETS_OFFLINE when set, else
    HF_HUB_OFFLINE."""
    value = os.environ.get("HF_DATASETS_OFFLINE")
    if value is None:
        value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.strip().upper() in _TRUE


def _endpoint(url: str, options: dict[str, Any]) -> tuple[str, int, str] | None:
    """(host, port, endpoint URL) that a remote URL is read from; None for local URLs and
    protocols without a known endpoint."""
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    if protocol in ("http", "https"):
        endpoint = url
    elif protocol in ENDPOINTS:
        endpoint = options.get("endpoint_url") or (options.get("client_kwargs") or {}).get(
            "endpoint_url") or ENDPOINTS[protocol]
    else:
        return None
    parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), endpoint


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _resolve(host: str, port: int, timeout: float) -> list[tuple]:
    """getaddrinfo in a daemon thread, so that a resolver that does not answer costs at most
    `timeout` seconds, now and at exit."""
    found: dict[str, Any] = {}

    def run() -> None:
        try:
            found["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            found["error"] = err

    thread = threading.Thread(target=run, name="dina-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError("no answer from the name resolver")
    if "error" in found:
        raise found["error"]
    return found["addresses"]


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                   "all_proxy")


def check_network(url: str, storage_options: dict[str, Any] | None = None,
                  timeout: float = CONNECT_TIMEOUT) -> None:
    """NetworkError, within `timeout` seconds, when the endpoint of a remote `url` cannot be
    reached; at once in offline mode (HF_DATASETS_OFFLINE=1) unless it is on loopback.

    One DNS lookup and one TCP connect per endpoint and process; local URLs pass untouched,
    and so does every URL when a proxy variable is set (the route is then the proxy's).
    """
    found = _endpoint(url, storage_options or {})
    if found is None or found[:2] in _REACHED:
        return
    host, port, endpoint = found
    advice = ("pass a local copy as data_url= (Python) or --data-url (command line), or set "
              "DINA_DATA_URL to it")
    if offline() and not _loopback(host):
        raise NetworkError(f"{url} is remote and offline mode is on (HF_DATASETS_OFFLINE or "
                           f"HF_HUB_OFFLINE): {advice}, or unset it to use the network")
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return
    deadline = time.monotonic() + timeout
    try:
        reason: OSError | None = None
        for family, kind, proto, _, address in _resolve(host, port, timeout):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer in time")
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(left)
                try:
                    sock.connect(address)
                except OSError as err:
                    reason = err
                    continue
            _REACHED.add((host, port))
            return
        raise reason or OSError(f"no address for {host}")
    except OSError as err:
        what = "timed out" if isinstance(err, TimeoutError) else \
            err.strerror or str(err) or type(err).__name__
        raise NetworkError(f"cannot reach {endpoint} for {url} ({what}, checked within "
                           f"{timeout:g} s): check the network, or {advice}") from None
