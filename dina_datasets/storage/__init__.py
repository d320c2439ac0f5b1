"""fsspec access for any URL (local, file://, gs://, memory://): ranged reads with retries
(tenacity), and atomic writes (temporary name, then rename). The one place fsspec is
called; the network check of remote URLs is `storage.network`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import posixpath
import uuid
from collections.abc import Iterator
from typing import IO, Any

# gcsfs >= 2026.3 probes the bucket type over gRPC before most calls: against an emulator or
# without network every call then waits ~60 s. Off unless the user turned it on.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import fsspec
from fsspec.spec import AbstractFileSystem

from dina_datasets.errors import DinaError, LayoutError, TransferError
from dina_datasets.errors import NetworkError as NetworkError
from dina_datasets.storage.network import CONNECT_TIMEOUT as CONNECT_TIMEOUT
from dina_datasets.storage.network import ENDPOINTS as ENDPOINTS
from dina_datasets.storage.network import check_network
from dina_datasets.storage.network import offline as offline

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


class _ShortRead(Exception):
    """A read that returned fewer bytes than asked of a file that holds them: retried."""

    def __init__(self, data: bytes) -> None:
        super().__init__(f"short read: {len(data)} bytes")
        self.data = data


def _retrying(retries: int, fs: AbstractFileSystem, path: str) -> Any:
    """The retry policy of every read: `retries` more attempts after the first on transient
    errors and short reads, back-off from BACKOFF seconds doubling up to 5 s, the file's
    cached metadata dropped before each new attempt."""
    import tenacity

    def forget(_: Any) -> None:
        with contextlib.suppress(Exception):
            fs.invalidate_cache(path)

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=tenacity.wait_exponential(multiplier=BACKOFF, exp_base=2, max=5.0),
        retry=tenacity.retry_if_exception(lambda err: isinstance(err, _ShortRead) or
                                          _transient(err)),
        before_sleep=forget, reraise=True)


def read_range(fs: AbstractFileSystem, path: str, start: int, end: int, *, url: str,
               retries: int | None = None) -> bytes:
    """Exactly the bytes [start, end) of a file, retrying transient failures (`RETRIES`
    more attempts, back-off from `BACKOFF` s; `TransferError` when they run out).

    A read that returns fewer bytes than asked is retried (the file's size, asked to tell a
    short read from a short file, is part of the attempt and retried with it): returned
    short when the file really is shorter (the caller reports a truncated file), a
    `TransferError` when it stays short of a file that holds the bytes.
    """
    def attempt() -> bytes:
        data = fs.cat_file(path, start=start, end=end)
        if len(data) != end - start and fs.size(path) >= end:
            raise _ShortRead(data)
        return data

    return _retried(attempt, fs, path, url, RETRIES if retries is None else retries,
                    f"reading bytes {start}-{end} of {url}")


def read_file(fs: AbstractFileSystem, path: str, *, url: str, retries: int | None = None
              ) -> bytes:
    """The whole of a (small) file, with `read_range`'s retries (a read shorter than the
    file's size is retried); FileNotFoundError when it does not exist."""
    def attempt() -> bytes:
        data = fs.cat_file(path)
        if len(data) < fs.size(path):
            raise _ShortRead(data)
        return data

    return _retried(attempt, fs, path, url, RETRIES if retries is None else retries,
                    f"reading {url}", missing=FileNotFoundError)


def read_ranges(fs: AbstractFileSystem, path: str, starts: list[int], ends: list[int], *,
                url: str) -> list[bytes]:
    """The byte ranges [starts[i], ends[i]) of a file in one concurrent call; a range that
    failed or came back short is read again with `read_range`'s retries."""
    if not starts:
        return []
    try:
        found: list[Any] = list(fs.cat_ranges([path] * len(starts), starts, ends,
                                              on_error="return"))
    except Exception as err:
        if not _transient(err):
            raise
        found = [err] * len(starts)
    return [got if isinstance(got, bytes) and len(got) == b - a else
            read_range(fs, path, a, b, url=url)
            for got, a, b in zip(found, starts, ends, strict=True)]


def _retried(attempt: Any, fs: AbstractFileSystem, path: str, url: str, retries: int,
             what: str, missing: type[Exception] = LayoutError) -> bytes:
    try:
        return _retrying(retries, fs, path)(attempt)
    except _ShortRead as short:  # the file holds the bytes, the link kept cutting them
        raise TransferError(f"{what} failed after {retries + 1} attempts: every read came "
                            f"back short ({len(short.data)} bytes) of a file that holds "
                            "them") from None
    except FileNotFoundError as err:
        if missing is FileNotFoundError:
            raise
        raise LayoutError(f"no such file: {url}") from err
    except Exception as err:
        if _transient(err):
            raise TransferError(f"{what} failed after {retries + 1} attempts: {err!r}"
                                ) from err
        raise


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
