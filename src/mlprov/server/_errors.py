"""Every failure as one JSON shape: ``{"error": {"type": ..., "message": ...}}``.

An :class:`~mlprov.errors.MlprovError` answers with its ``http_status`` and its one-line
message (a policy denial also lists the failed requirements). Validation errors name the
field, never echo the input. Anything else is a bug: logged here with its traceback,
answered with 500 and a fixed message, so no stack trace, SQL, path or secret leaves the
process.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mlprov.errors import AuthenticationError, MlprovError, PolicyDenied

__all__ = ["error_body", "error_response", "install_error_handlers"]

log = logging.getLogger("mlprov.server")

_HTTP_TYPES = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    416: "RangeNotSatisfiable",
    429: "TooManyRequests",
}


def error_body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": " ".join(message.split())[:1000]}
    error.update(extra)
    return {"error": error}


def error_response(error: MlprovError) -> JSONResponse:
    extra: dict[str, Any] = {}
    if isinstance(error, PolicyDenied) and error.reasons:
        extra["reasons"] = list(error.reasons)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, AuthenticationError) else None
    return JSONResponse(
        error_body(type(error).__name__, error.message, **extra),
        status_code=error.http_status,
        headers=headers,
    )


def _validation_message(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors()[:3]:
        if item.get("type") == "json_invalid":
            problems.append("the body is not valid JSON")
            continue
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(problems) if problems else "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    async def on_mlprov_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, MlprovError)
        return error_response(error)

    async def on_validation_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return JSONResponse(
            error_body("ValidationError", _validation_message(error)), status_code=422
        )

    async def on_http_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        kind = _HTTP_TYPES.get(error.status_code, "HTTPError")
        message = error.detail if isinstance(error.detail, str) else kind
        return JSONResponse(
            error_body(kind, message), status_code=error.status_code, headers=error.headers
        )

    async def on_internal_error(request: Request, error: Exception) -> JSONResponse:
        log.error(
            "internal error answering %s %s", request.method, request.url.path, exc_info=error
        )
        return JSONResponse(error_body("InternalError", "internal error"), status_code=500)

    app.add_exception_handler(MlprovError, on_mlprov_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_internal_error)
