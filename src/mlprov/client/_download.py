"""Requests sent with :mod:`http.client` (standard library) instead of httpx, when they
can be sent exactly as httpx would send them (docs/adr/0049, amendments "pull without the
HTTP stack's per-piece cost" and "GETs without httpx").

Large bodies (blobs): httpx hands a body over in pieces of at most 64 KiB, each through
h11's event machinery: about 16,000 pieces and 2.5 s of CPU per GiB here, more than
hashing the same bytes. :meth:`http.client.HTTPResponse.readinto` fills a multi-MiB
buffer with a few ``recv_into`` calls and no per-piece objects, at a fifth of that CPU.

Small requests that are safe to repeat (an alias's resolution, a version's record, its
signature, the server's policy judgement): importing httpx, httpcore and anyio and
building a client costs a fresh process more than the requests themselves (0.1 to 0.25 s
on these machines; the whole of a small ``mlprov pull`` is about 1 s). So every GET and
HEAD, and every other request the transport may repeat with a JSON body or none, goes
over a kept-alive :mod:`http.client` connection, and a command that only reads
(``mlprov pull``, ``verify``, ``check-installed``) never imports httpx.

"Exactly as httpx would": a direct connection (no proxy from the environment applies),
the same headers and token, TLS with the same context (:func:`tls_context`, which the
httpx client is given too). Otherwise (a proxy applies) everything goes through httpx.

Everything else about a request (what is retried, how an error answer becomes an
MlprovError) is the transport's (:mod:`mlprov.client._transport`).
"""

from __future__ import annotations

import http.client
import os
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

__all__ = ["Answer", "DirectGet", "ReadInto", "direct_get_for", "pieces_reader", "tls_context"]

#: Fills the buffer it is given with the next bytes of a body; 0 at its end.
ReadInto = Callable[[memoryview], int]


@dataclass(frozen=True)
class Answer:
    """A whole answer (status and body) to a request, however it was sent."""

    status_code: int
    reason_phrase: str
    content: bytes

    def json(self) -> Any:
        """The body as JSON (ValueError if it is not)."""
        import json  # noqa: PLC0415

        return json.loads(self.content)


def tls_context() -> ssl.SSLContext:
    """The context a server's certificate is verified with, on both paths: the roots in
    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set, else certifi's (httpx's own rule
    for ``trust_env=True``, which users of httpx-based tools already rely on)."""
    import ssl  # noqa: PLC0415

    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi  # noqa: PLC0415

    return ssl.create_default_context(cafile=certifi.where())


#: How a kept connection the server closed while it was idle fails on first use (the
#: request cannot have been answered). A timeout is not among them: it says the server
#: is slow, and sending again at once would only double the wait.
_CLOSED_WHILE_IDLE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


class DirectGet:
    """GETs (and HEADs) over :mod:`http.client` to one origin (scheme, host, port)."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        timeout: float,
        context: Callable[[], ssl.SSLContext] = tls_context,
    ) -> None:
        self._scheme = scheme
        self._host = host
        self._port = port
        self._timeout = timeout
        self._make_context = context
        self._context: ssl.SSLContext | None = None
        #: Connections kept alive between small requests (:meth:`fetch`); one per thread
        #: that had one in flight at once, handed out under the lock.
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        if self._scheme == "http":
            return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        if self._context is None:
            self._context = self._make_context()
        return http.client.HTTPSConnection(
            self._host, self._port, timeout=self._timeout, context=self._context
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def fetch(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Answer:
        """Send ``method target`` (with a small ``body``) and read its whole answer, on
        the connection kept from the request before when there is one. Only for requests
        that are safe to repeat (the caller's rule): a kept connection the server has
        closed meanwhile (its idle timeout) fails on first use, and the request is then
        sent once more on a new one; any other failure (a timeout above all), and any
        failure on a new connection, is the caller's to retry or report."""
        with self._lock:
            kept = self._idle.pop() if self._idle else None
        while True:
            connection = kept if kept is not None else self._connection()
            try:
                connection.request(method, target, body=body, headers=dict(headers))
                answer = connection.getresponse()
                content = answer.read()
            except (OSError, http.client.HTTPException) as e:
                connection.close()
                if kept is not None and isinstance(e, _CLOSED_WHILE_IDLE):
                    kept = None
                    continue
                raise
            if answer.will_close:
                connection.close()
            else:
                with self._lock:
                    self._idle.append(connection)
            return Answer(answer.status, answer.reason, content)

    def send(
        self, target: str, headers: Mapping[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send ``GET target`` and read the answer's head; the caller closes both."""
        connection = self._connection()
        try:
            connection.request("GET", target, headers=dict(headers))
            return connection, connection.getresponse()
        except BaseException:
            connection.close()
            raise


def direct_get_for(
    base_url: str, timeout: float, context: Callable[[], ssl.SSLContext] = tls_context
) -> DirectGet | None:
    """A :class:`DirectGet` to ``base_url``'s origin, or None when httpx would not connect
    there directly: a proxy from the environment applies to it (httpx honours
    ``HTTP(S)_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``, as :mod:`urllib.request` reads them)."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or parts.hostname is None:
        return None
    proxies = urllib.request.getproxies_environment()
    # proxy_bypass reads NO_PROXY from the environment (getproxies_environment's source).
    if (proxies.get(scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(
        parts.hostname
    ):
        return None
    port = parts.port or (443 if scheme == "https" else 80)
    return DirectGet(scheme, parts.hostname, port, timeout, context)


def pieces_reader(pieces: Iterator[bytes]) -> ReadInto:
    """``read_into`` over an iterator of byte pieces (the httpx stream, when a proxy
    applies): each call copies what fits of the current piece."""
    pending: list[memoryview] = []

    def read_into(buffer: memoryview) -> int:
        filled = 0
        while filled < len(buffer):
            if not pending:
                piece = next(pieces, None)
                if piece is None:
                    break
                if not piece:
                    continue
                pending.append(memoryview(piece))
            head = pending[0]
            take = min(len(head), len(buffer) - filled)
            buffer[filled : filled + take] = head[:take]
            filled += take
            if take == len(head):
                pending.pop()
            else:
                pending[0] = head[take:]
        return filled

    return read_into
