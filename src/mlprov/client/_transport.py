"""Requests to a ``mlprov serve``: bearer token, retries that are safe, errors as MlprovErrors.

Retries: a request is sent again only when repeating it cannot do anything twice: GET
and HEAD, a blob upload (``PUT /api/v1/blobs/{sha256}``: the same bytes under their own
digest) and any request carrying an ``Idempotency-Key`` (the server returns what the
first one made). Only a failure that says nothing about whether the request was
refused is retried: a connection error, a timeout, 502, 503 or 504; a 4xx never is.
Waits grow 0.25 s, 0.5 s, 1 s, ... (capped at 4 s).

Every request that may be repeated and has a JSON body or none goes over :mod:`http.client`
when no proxy applies (:mod:`mlprov.client._download`: a read-only command then never
imports httpx); streamed uploads, requests that must not be repeated, and all of them
behind a proxy go through one httpx client built on first use. Both paths retry and report
errors alike.

Errors: the server's body ``{"error": {"type", "message"}}`` becomes the MlprovError
subclass of that name (falling back by status), so a command fails against a server
with the exit code it has locally. The token is sent only in the Authorization header
and never appears in an error message.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from mlprov import errors
from mlprov.client._download import Answer, ReadInto, direct_get_for, pieces_reader, tls_context
from mlprov.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    MlprovError,
    NotFoundError,
    PermissionDeniedError,
    PolicyDenied,
    PreconditionFailedError,
    StorageError,
    VerificationError,
)

if TYPE_CHECKING:
    import http.client
    import ssl

    import httpx

__all__ = ["RETRIED_STATUSES", "Answer", "Transport", "error_from_response"]

#: Answers that mean "not handled, try again" (a proxy or an overloaded replica).
RETRIED_STATUSES = frozenset({502, 503, 504})
_MAX_WAIT = 4.0

#: Fallback by status when the body names no error type mlprov knows.
_BY_STATUS: dict[int, type[MlprovError]] = {
    400: InvalidInputError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: InvalidInputError,
    415: InvalidInputError,
    416: InvalidInputError,
    422: InvalidInputError,
}


def _error_class(kind: str, status: int) -> type[MlprovError]:
    found = getattr(errors, kind, None) if kind in errors.__all__ else None
    if isinstance(found, type) and issubclass(found, MlprovError):
        return found
    if kind == "ValidationError":
        return InvalidInputError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return StorageError if status >= 500 or status == 429 else InvalidInputError


def _query(params: Mapping[str, Any] | None) -> str:
    """``?k=v&...`` for the parameters that are not None, encoded as httpx encodes them
    (booleans as ``true``/``false``, a list as the key repeated, spaces as ``+``)."""
    items: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        for one in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(one, bool):
                items.append((key, "true" if one else "false"))
            elif one is not None:
                items.append((key, str(one)))
    return "?" + urlencode(items) if items else ""


def _answer_of(response: httpx.Response) -> Answer:
    return Answer(response.status_code, response.reason_phrase, response.content)


def error_from_response(response: Answer) -> MlprovError:
    """The MlprovError a failed answer stands for (by the error type the server names)."""
    kind, message = "", ""
    reasons: tuple[str, ...] = ()
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        kind = str(error.get("type", ""))
        message = str(error.get("message", ""))
        found = error.get("reasons")
        if isinstance(found, list):
            reasons = tuple(str(r) for r in found)
    status = response.status_code
    if not message:
        message = f"the server answered {status} {response.reason_phrase}".strip()
    if status == 429:
        message = f"the server is rate-limiting this token: {message}"
    elif status >= 500 and kind not in errors.__all__:
        message = f"the server failed ({status}): {message}"
    cls = _error_class(kind, status)
    if issubclass(cls, PolicyDenied):
        return cls(message, reasons=reasons)
    if issubclass(cls, errors.AuditChainError):
        return VerificationError(message)
    return cls(message)


class Transport:
    """One HTTP connection pool to one server, with its token."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float, retries: int) -> None:
        if retries < 0:
            raise InvalidInputError("retries must not be negative")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        headers = {"User-Agent": "mlprov-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._headers = headers
        self._timeout = timeout
        self._tls: ssl.SSLContext | None = None
        self._prefix = urlsplit(self.base_url).path.rstrip("/")
        self._direct = direct_get_for(self.base_url, timeout, self._tls_context)
        self._client: httpx.Client | None = None
        #: Waits between attempts (tests shorten them); attempt n waits base * 2**n.
        self.backoff = 0.25

    def _tls_context(self) -> ssl.SSLContext:
        """One TLS context for both paths, so both verify the server alike."""
        if self._tls is None:
            self._tls = tls_context()
        return self._tls

    def _httpx(self) -> httpx.Client:
        """The httpx client, built on first use (module docstring)."""
        if self._client is None:
            import httpx  # noqa: PLC0415 - only requests with a body or behind a proxy

            https = self.base_url.lower().startswith("https:")
            self._client = httpx.Client(
                base_url=self.base_url,
                headers=self._headers,
                timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 10.0)),
                follow_redirects=False,
                verify=self._tls_context() if https else True,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._direct is not None:
            self._direct.close()

    def _unreachable(self, error: Exception) -> StorageError:
        import http.client  # noqa: PLC0415
        import socket  # noqa: PLC0415

        # httpx's errors can only be met once httpx was imported (by :meth:`_httpx`).
        httpx = sys.modules.get("httpx")
        connect = (ConnectionRefusedError,) + ((httpx.ConnectError,) if httpx else ())
        timeout = (TimeoutError,) + ((httpx.TimeoutException,) if httpx else ())
        if isinstance(error, connect):
            what = "connection refused or host unreachable"
        elif isinstance(error, socket.gaierror):
            what = "its host name does not resolve"
        elif isinstance(error, timeout):
            what = "timed out"
        elif isinstance(error, (http.client.IncompleteRead, ConnectionResetError)):
            what = "the connection was lost"
        else:
            what = type(error).__name__
        return StorageError(f"cannot reach the registry server at {self.base_url}: {what}")

    def _wait(self, attempt: int) -> None:
        time.sleep(min(self.backoff * (2**attempt), _MAX_WAIT))

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        retry: bool,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: tuple[int, ...] = (),
    ) -> Iterator[httpx.Response]:
        """Send a request and yield its (not yet read) response once it succeeded.

        ``content`` makes the body anew for each attempt (a file reopened), so a retried
        upload streams the bytes again. ``retry`` says the request may be repeated
        (module docstring). A failure is raised as its MlprovError; ``accept`` lists
        other statuses handed back as they are.
        """
        import httpx  # noqa: PLC0415

        client = self._httpx()
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            body = content() if content is not None else None
            try:
                request = client.build_request(
                    method,
                    path,
                    params={k: v for k, v in (params or {}).items() if v is not None},
                    json=json,
                    content=body,
                    headers=dict(headers or {}),
                )
                response = client.send(request, stream=True)
            except httpx.TransportError as e:
                if last:
                    raise self._unreachable(e) from None
                self._wait(attempt)
                continue
            try:
                if response.status_code in RETRIED_STATUSES and not last:
                    response.read()
                    self._wait(attempt)
                    continue
                if response.status_code >= 400 and response.status_code not in accept:
                    response.read()
                    raise error_from_response(_answer_of(response))
                yield response
            except httpx.TransportError as e:
                raise self._unreachable(e) from None
            finally:
                response.close()
            return

    @contextmanager
    def download(self, path: str, *, headers: Mapping[str, str]) -> Iterator[ReadInto]:
        """GET a large body (a blob) and yield a ``read_into(buffer) -> int`` over it
        (:mod:`mlprov.client._download`): straight from the socket when the server is
        reached directly, else through the httpx stream. Retried as :meth:`stream`
        retries a GET; an error answer is raised as its MlprovError; a connection lost
        while the body is read is a StorageError naming the server."""
        if self._direct is None:
            with self.stream("GET", path, retry=True, headers=headers) as response:
                yield pieces_reader(response.iter_raw())
            return
        import http.client  # noqa: PLC0415

        prefix = self._prefix
        sent = {**self._headers, **headers}
        attempts = 1 + self.retries
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                connection, answer = self._direct.send(prefix + path, sent)
            except (OSError, http.client.HTTPException) as e:
                if last:
                    raise self._unreachable(e) from None
                self._wait(attempt)
                continue
            try:
                try:
                    if answer.status in RETRIED_STATUSES and not last:
                        answer.read()
                        self._wait(attempt)
                        continue
                    if answer.status >= 300:
                        raise error_from_response(
                            Answer(answer.status, answer.reason, answer.read())
                        )
                except (OSError, http.client.HTTPException) as e:
                    raise self._unreachable(e) from None
                yield _lost_as_unreachable(answer, self._unreachable)
            finally:
                answer.close()
                connection.close()
            return

    def request(
        self,
        method: str,
        path: str,
        *,
        retry: bool | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: tuple[int, ...] = (),
    ) -> Answer:
        """Send a request and read its whole answer (for JSON and small bodies)."""
        safe = retry if retry is not None else method in ("GET", "HEAD")
        if self._direct is not None and safe and content is None:
            return self._fetch(method, path, params, json, headers, accept)
        with self.stream(
            method,
            path,
            retry=safe,
            params=params,
            json=json,
            content=content,
            headers=headers,
            accept=accept,
        ) as response:
            response.read()
            return _answer_of(response)

    def _fetch(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        accept: tuple[int, ...],
    ) -> Answer:
        """A request that may be repeated, over the direct connection (module docstring),
        retried and reported exactly as :meth:`stream` retries and reports. A JSON body is
        encoded as httpx encodes it (UTF-8, compact, no NaN)."""
        import http.client  # noqa: PLC0415
        import json as json_text  # noqa: PLC0415

        assert self._direct is not None
        target = self._prefix + path + _query(params)
        sent = {**self._headers, **(headers or {})}
        body = None
        if json is not None:
            body = json_text.dumps(
                json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
        attempts = 1 + self.retries
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                answer = self._direct.fetch(method, target, sent, body)
            except (OSError, http.client.HTTPException) as e:
                if last:
                    raise self._unreachable(e) from None
                self._wait(attempt)
                continue
            if answer.status_code in RETRIED_STATUSES and not last:
                self._wait(attempt)
                continue
            if answer.status_code >= 400 and answer.status_code not in accept:
                raise error_from_response(answer)
            return answer
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise StorageError(
                f"the server at {self.base_url} answered {method} {path} with no JSON"
            ) from None


def _lost_as_unreachable(
    answer: http.client.HTTPResponse, unreachable: Callable[[Exception], StorageError]
) -> ReadInto:
    """``answer.readinto`` with a connection lost mid-body raised as the transport's
    StorageError (the caller's thread reads it, outside the transport's own ``try``).
    http.client answers 0 when the connection closes before Content-Length bytes came
    (it does not raise, for compatibility): that is a lost connection too."""
    import http.client  # noqa: PLC0415

    def guarded(buffer: memoryview) -> int:
        try:
            got = answer.readinto(buffer)
        except (OSError, http.client.HTTPException) as e:
            raise unreachable(e) from None
        if got == 0 and len(buffer) and answer.length:
            raise unreachable(http.client.IncompleteRead(b"", answer.length))
        return got

    return guarded
