"""A real GCS server on loopback for the tests, and a fault-injecting proxy in front of it.

`gcp-storage-emulator` serves the JSON and media APIs that gcsfs speaks; `FaultProxy`
forwards each request to it on a fresh connection, counts the body bytes that reach the
client, and can answer 503 or cut a response mid-body at chosen media requests. With a
`delay`, each media request is held that long before it is answered, so that concurrent
requests overlap; `max_in_flight` is the most media requests it held at once. With a
`latency`, every request (metadata included) waits that long first, as over a slow link.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gcp_storage_emulator.server import create_server

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Emulator:
    """gcp-storage-emulator in this process, with an in-memory `xai-deel` bucket."""

    def __init__(self, bucket: str = "xai-deel") -> None:
        self.port = free_port()
        self.bucket = bucket
        self.server = create_server(HOST, self.port, in_memory=True, default_bucket=bucket)
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body_bytes: int = 0
    fault: str | None = None

    @property
    def media(self) -> bool:
        return self.method == "GET" and "alt=media" in self.target


# A fault plan maps the n-th media GET (0-based) to "503" or ("cut", bytes_of_body_to_send).
Fault = str | tuple[str, int] | None


@dataclass
class FaultProxy:
    """HTTP proxy on loopback between gcsfs and the emulator, one request per connection."""

    upstream_port: int
    plan: Callable[[int, Request], Fault] = lambda n, r: None
    requests: list[Request] = field(default_factory=list)
    delay: float = 0.0
    latency: float = 0.0

    def __post_init__(self) -> None:
        self.in_flight = self.max_in_flight = 0
        self.port = free_port()
        self._sock = socket.create_server((HOST, self.port))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._media = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def media_bytes(self) -> int:
        return sum(r.body_bytes for r in self.requests if r.media)

    def other_bytes(self) -> int:
        return sum(r.body_bytes for r in self.requests if not r.media)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with contextlib.closing(client):
            client.settimeout(10)
            head, body = _read_request(client)
            if head is None:
                return
            time.sleep(self.latency)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in
                       (line.split(":", 1) for line in lines[1:] if ":" in line)}
            request = Request(method, target, headers)
            with self._lock:
                self.requests.append(request)
                fault = self.plan(self._media, request) if request.media else None
                if request.media:
                    self._media += 1
            request.fault = fault if isinstance(fault, str) else (fault and fault[0])
            if request.media:
                with self._lock:
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    time.sleep(self.delay)
                    self._answer(client, request, fault, lines, head, body)
                finally:
                    with self._lock:
                        self.in_flight -= 1
            else:
                self._answer(client, request, fault, lines, head, body)

    def _answer(self, client: socket.socket, request: Request, fault: Fault, lines: list[str],
                head: bytes, body: bytes) -> None:
        if fault == "503":
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain"
                           b"\r\nContent-Length: 11\r\nConnection: close\r\n\r\nunavailable")
            return
        response = _forward(self.upstream_port, lines, head, body)
        split = response.find(b"\r\n\r\n") + 4
        resp_head, resp_body = response[:split], response[split:]
        resp_head = b"\r\n".join(
            line for line in resp_head.split(b"\r\n")
            if not line.lower().startswith(b"connection:"))
        resp_head = resp_head[:-2] + b"Connection: close\r\n\r\n"
        if isinstance(fault, tuple) and fault[0] == "cut":
            resp_body = resp_body[:fault[1]]
        request.body_bytes = len(resp_body)
        with contextlib.suppress(OSError):
            client.sendall(resp_head + resp_body)
            if isinstance(fault, tuple):
                client.shutdown(socket.SHUT_RDWR)


def _read_request(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def _forward(port: int, lines: list[str], head: bytes, body: bytes) -> bytes:
    kept = [line for line in lines if not line.lower().startswith("connection:")]
    request = ("\r\n".join(kept) + "\r\nConnection: close\r\n\r\n").encode("latin-1") + body
    with socket.create_connection((HOST, port), timeout=30) as upstream:
        upstream.sendall(request)
        chunks = []
        while chunk := upstream.recv(1 << 20):
            chunks.append(chunk)
    return b"".join(chunks)
