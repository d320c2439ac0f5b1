"""fsspec access for any URL (local, file://, gs://, memory://): ranged reads with retries,
and atomic writes (temporary name, then rename)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import os
import posixpath
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import IO, Any

# gcsfs >= 2026.3 probes the bucket type over gRPC before most calls: against an emulator or
# without network every call then waits ~60 s. Off unless the user turned it on.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import fsspec
from fsspec.spec import AbstractFileSystem

from dina_datasets.errors import DinaError, LayoutError, NetworkError, TransferError

RETRIES = 5
BACKOFF = 0.2
TMP_MARK = ".tmp-"


PUBLIC_BUCKETS = frozenset({"xai-deel"})  # read anonymously unless a token is given


def resolve_options(url: str, storage_options: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The fsspec options used for `url`.

    gs:// reads of the public DINA bucket, and any gs:// URL served by an emulator
    (`endpoint_url` or `STORAGE_EMULATOR_HOST`), are anonymous unless a `token` is given;
    every other gs:// URL keeps gcsfs's own credential resolution (google default
    credentials, `GOOGLE_APPLICATION_CREDENTIALS`, `token=` in the options).
    """
    options = dict(storage_options or {})
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol in ("gs", "gcs"):
        bucket = url.split("://", 1)[1].split("/", 1)[0]
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator and "endpoint_url" not in options:
            options["endpoint_url"] = emulator if "://" in emulator else f"http://{emulator}"
        if bucket in PUBLIC_BUCKETS or "endpoint_url" in options:
            options.setdefault("token", "anon")
    return options


def filesystem(url: str, storage_options: dict[str, Any] | None = None
               ) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and path of `url`, with `resolve_options`' credentials; a
    remote URL's endpoint is checked first (`check_network`)."""
    options = resolve_options(url, storage_options)
    check_network(url, options)
    try:
        return fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as err:
        raise LayoutError(f"cannot open {url!r}: {err}. Use a local path or a file://, "
                          "gs:// or memory:// URL (any fsspec protocol that is installed)"
                          ) from err


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


def join(url: str, *parts: str) -> str:
    """Join path parts onto a URL or local path."""
    if "://" in url:
        protocol, rest = url.split("://", 1)
        return f"{protocol}://{posixpath.join(rest, *parts)}" if rest else \
            f"{protocol}://{posixpath.join(*parts)}"
    return os.path.join(url, *parts)


def _transient(err: BaseException) -> bool:
    if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError,
                        NotADirectoryError, DinaError)):
        return False
    if isinstance(err, (OSError, asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True
    code = getattr(err, "code", None) or getattr(err, "status", None)
    if isinstance(code, int):
        return code >= 500 or code in (408, 429)
    return type(err).__module__.split(".")[0] in ("aiohttp", "requests", "urllib3")


def read_range(fs: AbstractFileSystem, path: str, start: int, end: int, *, url: str,
               retries: int = RETRIES) -> bytes:
    """Exactly the bytes [start, end) of a file, retrying transient failures.

    A read that returns fewer bytes than asked is retried, and reported as a truncated file
    when the file really is shorter.
    """
    delay = BACKOFF
    for attempt in range(retries + 1):
        try:
            data = fs.cat_file(path, start=start, end=end)
        except Exception as err:
            if not _transient(err) or attempt == retries:
                if isinstance(err, FileNotFoundError):
                    raise LayoutError(f"no such file: {url}") from err
                if _transient(err):
                    raise TransferError(f"reading bytes {start}-{end} of {url} failed after "
                                        f"{retries + 1} attempts: {err!r}") from err
                raise
        else:
            if len(data) == end - start:
                return data
            if attempt == retries or fs.size(path) < end:
                return data
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
        with contextlib.suppress(Exception):
            fs.invalidate_cache(path)
    raise AssertionError("unreachable")


def info(fs: AbstractFileSystem, path: str, url: str) -> dict[str, Any]:
    """fsspec info of a file (size, version stamps); LayoutError when it does not exist."""
    try:
        found = fs.info(path)
    except FileNotFoundError:
        raise LayoutError(f"no such file: {url}") from None
    except NotADirectoryError:
        raise LayoutError(f"no such file: {url} (a folder of its path is a file)") from None
    if found.get("type") == "directory":
        raise LayoutError(f"{url} is a folder, not a file")
    return found


# Object stores whose files honour `autocommit=False`: an object is published only when its
# upload is committed, so an upload is atomic. Not `memory://`: fsspec's MemoryFile is
# visible from `open` on and ignores `autocommit`, so it takes the temporary-name route.
OBJECT_STORES = frozenset({"gs", "gcs", "s3", "s3a", "az", "abfs"})


@contextlib.contextmanager
def atomic_write(url: str, mode: str = "wb", storage_options: dict[str, Any] | None = None,
                 ) -> Iterator[IO[Any]]:
    """Open `url` for writing; the file appears under `url` only complete.

    Local files are written under a temporary name and renamed. Objects of an object store
    are streamed through fsspec's resumable upload opened with `autocommit=False`: blocks go
    up as they are written (no local spool of the whole file), and the object is published
    only by the final `commit()`; on an exception the upload is discarded. Other filesystems
    (`memory://` included) get a temporary name and a move. On every filesystem a reader
    sees the old file or the new one, never a part; on an exception nothing appears under
    `url`, an existing file there is left as it was, and no temporary is left.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write opens files for writing: mode 'wb' or 'w', got {mode!r}")
    fs, path = filesystem(url, storage_options)
    if is_local(fs):
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, mode) as handle:
                yield handle
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
    elif _protocol(fs) in OBJECT_STORES:
        raw = fs.open(path, "wb", autocommit=False)
        handle = raw if mode == "wb" else io.TextIOWrapper(raw, encoding="utf-8",
                                                           write_through=True)
        try:
            yield handle
            if handle is not raw:
                handle.flush()
            raw.close()
            raw.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                raw.discard()
            raise
    else:
        tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex[:8]}"
        try:
            with fs.open(tmp, mode) as handle:
                yield handle
            fs.mv(tmp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                fs.rm(tmp)
            raise


def signature(info: dict[str, Any]) -> str | None:
    """A version stamp of a file from its fsspec info: the object generation or etag on
    object stores, the modification time elsewhere; None when the filesystem gives none."""
    for key in ("generation", "etag", "ETag", "mtime", "LastModified", "updated", "created"):
        value = info.get(key)
        if value not in (None, ""):
            return f"{key}={value}"
    return None


def _protocol(fs: AbstractFileSystem) -> str:
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


def is_local(fs: AbstractFileSystem) -> bool:
    """Whether `fs` is the local filesystem (plain paths, file://)."""
    return _protocol(fs) in ("file", "local")


def exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    fs, path = filesystem(url, storage_options)
    return fs.exists(path)
