"""A loopback HTTP proxy that lets the server act and then loses its answer, for fault tests.

Every request is forwarded to the real server (the body streamed through as it arrives) and
the server's whole answer is read. Then ``choose`` decides, per request, whether the client
gets that answer or loses it one of three ways:

- ``Loss.BAD_GATEWAY``: a 502 with a proxy's HTML error page instead of the answer;
- ``Loss.RESET``: the connection is reset (TCP RST) without a byte of the answer;
- ``Loss.TIMEOUT``: the answer is held until the client gives up and hangs up.

So the server has done what was asked (made the post, stored the upload) and the client cannot
know it: the case where a careless retry posts twice. Only requests that reached the server
are lost; every loss is recorded in ``lost`` with the server's own status code. ``late`` counts
answers the client stopped waiting for by itself (a slow server under its read timeout).
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}
_PIECE = 64 * 1024
_KEPT = 64 * 1024  # the head of a request body kept for ``choose`` (statuses fit whole)
_BAD_GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


class Loss(StrEnum):
    BAD_GATEWAY = "502"
    RESET = "reset"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class Request:
    """What ``choose`` sees: the request as the server got it (the body's first 64 KiB)."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body_head: bytes


@dataclass(frozen=True)
class Lost:
    """One answer the client never got; ``status`` is what the server had answered."""

    method: str
    path: str
    loss: Loss
    status: int
    label: str  # what ``choose`` called the request (``"poll"``, ``"media"``, …)


Choice = tuple[Loss, str] | None
Chooser = Callable[[Request], Choice]


def _never(request: Request) -> Choice:
    return None


class LossyProxy:
    """``with LossyProxy(upstream, choose) as proxy:`` → clients use ``proxy.base_url``.

    ``hold_s`` caps how long a ``TIMEOUT`` holds an answer when the client does not hang up.
    """

    def __init__(self, upstream: str, choose: Chooser = _never, *, hold_s: float = 30.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the proxy forwards to plain http://host:port, not {upstream}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_netloc = parts.netloc
        self.choose = choose
        self.hold_s = hold_s
        self.lost: list[Lost] = []
        self.forwarded = 0
        self.late = 0  # answers passed on after the client had given up waiting (not ours)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> LossyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _decide(self, request: Request, status: int) -> Loss | None:
        with self._lock:
            self.forwarded += 1
            choice = self.choose(request)
            if choice is None:
                return None
            loss, label = choice
            self.lost.append(Lost(request.method, request.path, loss, status, label))
            return loss

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(_Relay):
            owner = proxy

        return Handler


class _Relay(BaseHTTPRequestHandler):
    """One client connection (HTTP/1.1 keep-alive); each request gets its own upstream one."""

    owner: LossyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest shows failures, not every request."""

    def do_GET(self) -> None:
        self._relay()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _relay(self) -> None:
        owner = self.owner
        upstream = http.client.HTTPConnection(
            owner.upstream_host, owner.upstream_port, timeout=owner.hold_s + 30
        )
        try:
            head = self._forward_request(upstream)
            answer = upstream.getresponse()
            body = answer.read()  # the whole answer: the server has finished acting
            status, reason, headers = answer.status, answer.reason, answer.getheaders()
        except (OSError, http.client.HTTPException):
            # The server never answered (or the client hung up mid-request): nothing to lose.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.send_error(502, "the proxy could not reach the server")
            return
        finally:
            upstream.close()
        request = Request(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, head
        )
        loss = owner._decide(request, status)
        try:
            if loss is Loss.BAD_GATEWAY:
                page = [("Content-Type", "text/html")]
                self._answer(502, "Bad Gateway", page, _BAD_GATEWAY_PAGE)
            elif loss is Loss.RESET:
                self._reset()
            elif loss is Loss.TIMEOUT:
                self._hold()
            else:
                if self._client_gone():
                    with owner._lock:
                        owner.late += 1
                self._answer(status, reason, headers, body)
        except OSError:  # the client had already hung up
            self.close_connection = True

    def _forward_request(self, upstream: http.client.HTTPConnection) -> bytes:
        """Send the request on, streaming its body; returns the body's first bytes."""
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        upstream.putheader("Host", self.owner.upstream_netloc)
        for name, value in self.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                upstream.putheader(name, value)
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = int(self.headers.get("Content-Length") or 0)
        if chunked:
            upstream.putheader("Transfer-Encoding", "chunked")
        elif length or self.command in ("POST", "PUT", "PATCH"):
            upstream.putheader("Content-Length", str(length))
        upstream.endheaders()
        kept = bytearray()

        def send(piece: bytes, frame: bool) -> None:
            if len(kept) < _KEPT:
                kept.extend(piece[: _KEPT - len(kept)])
            upstream.send(b"%x\r\n%s\r\n" % (len(piece), piece) if frame else piece)

        if chunked:
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers: dropped
                    upstream.send(b"0\r\n\r\n")
                    break
                piece = self.rfile.read(size)
                self.rfile.readline()
                send(piece, frame=True)
        else:
            left = length
            while left > 0:
                piece = self.rfile.read(min(_PIECE, left))
                if not piece:
                    raise ConnectionError("the client hung up in the middle of its request")
                left -= len(piece)
                send(piece, frame=False)
        return bytes(kept)

    def _answer(
        self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _client_gone(self) -> bool:
        """Whether the client hung up before its answer came (its own timeout, not ours)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def _reset(self) -> None:
        """Drop the connection with a TCP reset: linger 0, then close."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the socket's last file: closing both now sends the RST
        self.connection.close()

    def _hold(self) -> None:
        """Keep the answer back until the client gives up (hangs up) or ``hold_s`` passes."""
        self.close_connection = True
        deadline = time.monotonic() + self.owner.hold_s
        while not self.owner._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.2))
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        break  # the client hung up
                except OSError:
                    break
                time.sleep(0.05)  # it sent more (it should not): keep holding
