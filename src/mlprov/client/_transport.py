"""Requests to a ``mlprov serve``: bearer token, retries that are safe, errors as MlprovErrors.

Retries: a request is sent again only when repeating it cannot do anything twice: GET
and HEAD, a blob upload (``PUT /api/v1/blobs/{sha256}``: the same bytes under their own
digest) and any request carrying an ``Idempotency-Key`` (the server returns what the
first one made). Only a failure that says nothing about whether the request was
refused is retried: a connection error, a timeout, 502, 503 or 504; a 4xx never is.
Waits grow 0.25 s, 0.5 s, 1 s, ... (capped at 4 s).

Errors: the server's body ``{"error": {"type", "message"}}`` becomes the MlprovError
subclass of that name (falling back by status), so a command fails against a server
with the exit code it has locally. The token is sent only in the Authorization header
and never appears in an error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlprov import errors
from mlprov.client._download import ReadInto, as_httpx_response, direct_get_for, pieces_reader
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

    import httpx

__all__ = ["RETRIED_STATUSES", "Transport", "error_from_response"]

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


def error_from_response(response: httpx.Response) -> MlprovError:
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
        import httpx  # noqa: PLC0415 - only client mode needs it

        if retries < 0:
            raise InvalidInputError("retries must not be negative")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        headers = {"User-Agent": "mlprov-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._headers = headers
        self._direct = direct_get_for(self.base_url, timeout)
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
        )
        #: Waits between attempts (tests shorten them); attempt n waits base * 2**n.
        self.backoff = 0.25

    def close(self) -> None:
        self._client.close()

    def _unreachable(self, error: Exception) -> StorageError:
        import http.client  # noqa: PLC0415

        import httpx  # noqa: PLC0415

        if isinstance(error, (httpx.ConnectError, ConnectionRefusedError)):
            what = "connection refused or host unreachable"
        elif isinstance(error, (httpx.TimeoutException, TimeoutError)):
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

        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            body = content() if content is not None else None
            try:
                request = self._client.build_request(
                    method,
                    path,
                    params={k: v for k, v in (params or {}).items() if v is not None},
                    json=json,
                    content=body,
                    headers=dict(headers or {}),
                )
                response = self._client.send(request, stream=True)
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
                    raise error_from_response(response)
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

        prefix = urlsplit(self.base_url).path.rstrip("/")
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
                        raise error_from_response(as_httpx_response(answer, answer.read()))
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
    ) -> httpx.Response:
        """Send a request and read its whole answer (for JSON and small bodies)."""
        safe = retry if retry is not None else method in ("GET", "HEAD")
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
            return response

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
