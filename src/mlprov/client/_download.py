"""Large response bodies (blobs) read straight from the socket into the caller's buffers
(docs/adr/0049, amendment "pull without the HTTP stack's per-piece cost").

httpx hands a body over in pieces of at most 64 KiB, each through h11's event machinery:
about 16,000 pieces and 2.5 s of CPU per GiB here, more than hashing the same bytes.
:class:`http.client.HTTPResponse.readinto` fills a multi-MiB buffer with a few
``recv_into`` calls and no per-piece objects, at a fifth of that CPU. So a blob GET is
sent with :mod:`http.client` (standard library) when it can be sent exactly as httpx
would send it: a direct connection (no proxy from the environment applies), the same
headers and token, TLS with the context httpx itself builds (certifi's roots, or
``SSL_CERT_FILE`` / ``SSL_CERT_DIR``). Otherwise (a proxy applies) the httpx stream is
used, copied into the same buffers.

Everything else about the request (what is retried, how an error answer becomes an
MlprovError) is the transport's, in :meth:`mlprov.client._transport.Transport.download`.
"""

from __future__ import annotations

import http.client
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["DirectGet", "ReadInto", "as_httpx_response", "direct_get_for", "pieces_reader"]

#: Fills the buffer it is given with the next bytes of a body; 0 at its end.
ReadInto = Callable[[memoryview], int]


class DirectGet:
    """One GET over :mod:`http.client` to one origin (scheme, host, port)."""

    def __init__(self, scheme: str, host: str, port: int, timeout: float) -> None:
        self._scheme = scheme
        self._host = host
        self._port = port
        self._timeout = timeout
        self._context: ssl.SSLContext | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._scheme == "http":
            return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        if self._context is None:
            import httpx  # noqa: PLC0415 - the context httpx would verify the server with

            self._context = httpx.create_ssl_context(trust_env=True)
        return http.client.HTTPSConnection(
            self._host, self._port, timeout=self._timeout, context=self._context
        )

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


def direct_get_for(base_url: str, timeout: float) -> DirectGet | None:
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
    return DirectGet(scheme, parts.hostname, port, timeout)


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


def as_httpx_response(response: http.client.HTTPResponse, body: bytes) -> httpx.Response:
    """An error answer read over http.client, as the httpx.Response that
    :func:`mlprov.client._transport.error_from_response` reads."""
    import httpx  # noqa: PLC0415

    return httpx.Response(response.status, headers=response.getheaders(), content=body)
