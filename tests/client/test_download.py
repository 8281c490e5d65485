"""Blob bodies read straight from the socket (``Transport.download``): the bytes, the
retry of a 503, an error answer as its MlprovError, a connection lost mid-body as one
StorageError, and the httpx path when a proxy from the environment applies, all against
real HTTP servers on loopback."""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mlprov.client._blob_stream import receive_blob
from mlprov.client._download import direct_get_for
from mlprov.client._transport import Transport
from mlprov.errors import EXIT_STORAGE, NotFoundError, StorageError
from support.loopback_http import clear_proxies, serving

BODY = os.urandom(9 * 1024 * 1024 + 5)


@contextmanager
def _blob_server(
    answers: list[str], tls: ssl.SSLContext | None = None
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Answers GET in turn with: ``ok`` (BODY), ``busy`` (503), ``missing`` (404 with an
    mlprov error body) or ``cut`` (half of BODY, then the connection closed)."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
            kind = answers.pop(0) if answers else "ok"
            if kind in ("busy", "missing"):
                status = 503 if kind == "busy" else 404
                body = json.dumps(
                    {"error": {"type": "NotFoundError", "message": "blob abc is not stored"}}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY if kind == "ok" else BODY[: len(BODY) // 2])
            if kind == "cut":
                self.close_connection = True

        def log_message(self, *_args: Any) -> None:
            pass

    with serving(Handler, tls) as base:
        yield f"{base}/prefix", seen


@contextmanager
def _forward_proxy() -> Iterator[tuple[str, list[str]]]:
    """A forwarding HTTP proxy (absolute-URI requests, RFC 9112 section 3.2.2) on
    loopback, written with http.client so that it does not itself read HTTP_PROXY."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append(self.path)
            target = urlsplit(self.path)
            upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
            upstream.request("GET", target.path, headers=headers)
            answer = upstream.getresponse()
            body = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            upstream.close()

        def log_message(self, *_args: Any) -> None:
            pass

    with serving(Handler) as base:
        yield base, seen


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)


def _receive(transport: Transport, target: Path) -> str:
    hasher = hashlib.sha256()
    with transport.download("/api/v1/blobs/abc", headers={"Accept-Encoding": "identity"}) as read:
        receive_blob(read, target, 0o644, [hasher])
    return hasher.hexdigest()


def test_the_body_is_read_whole_with_the_token_and_a_503_is_retried(tmp_path: Path) -> None:
    with _blob_server(["busy", "ok"]) as (base, seen):
        transport = Transport(base, "secret-token", timeout=10, retries=2)
        transport.backoff = 0.01
        try:
            digest = _receive(transport, tmp_path / "blob")
        finally:
            transport.close()
    assert digest == hashlib.sha256(BODY).hexdigest()
    assert (tmp_path / "blob").read_bytes() == BODY
    assert len(seen) == 2  # the 503, then the answer
    assert all(s["path"] == "/prefix/api/v1/blobs/abc" for s in seen)
    assert all(s["authorization"] == "Bearer secret-token" for s in seen)
    assert all(s["accept-encoding"] == "identity" for s in seen)


def test_an_error_answer_is_its_mlprov_error(tmp_path: Path) -> None:
    with _blob_server(["missing"]) as (base, seen):
        transport = Transport(base, None, timeout=10, retries=2)
        try:
            with pytest.raises(NotFoundError, match="blob abc is not stored"):
                _receive(transport, tmp_path / "blob")
        finally:
            transport.close()
    assert len(seen) == 1  # a 4xx is never retried
    assert not (tmp_path / "blob").exists()


def test_a_connection_lost_mid_body_is_one_storage_error(tmp_path: Path) -> None:
    with _blob_server(["cut"]) as (base, _seen):
        transport = Transport(base, None, timeout=10, retries=0)
        try:
            with pytest.raises(StorageError, match="the connection was lost") as caught:
                _receive(transport, tmp_path / "blob")
        finally:
            transport.close()
    assert caught.value.exit_code == EXIT_STORAGE
    assert "cannot reach the registry server at http://127.0.0.1:" in str(caught.value)


def test_a_proxy_from_the_environment_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert direct_get_for("http://127.0.0.1:9", 5) is not None
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert direct_get_for("http://127.0.0.1:9", 5) is not None  # another scheme's proxy
    assert direct_get_for("https://registry.example", 5) is None
    monkeypatch.setenv("NO_PROXY", "registry.example")
    assert direct_get_for("https://registry.example", 5) is not None
    with _blob_server(["ok"]) as (base, seen), _forward_proxy() as (proxy, forwarded):
        # Through the proxy: httpx sends the request there, and the body arrives
        # through the httpx stream.
        monkeypatch.setenv("HTTP_PROXY", proxy)
        assert direct_get_for(base, 5) is None
        transport = Transport(base, None, timeout=10, retries=0)
        try:
            digest = _receive(transport, tmp_path / "blob")
        finally:
            transport.close()
    assert digest == hashlib.sha256(BODY).hexdigest()
    assert forwarded == [f"{base}/api/v1/blobs/abc"]
    assert len(seen) == 1


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate PEM, private key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlprov test server")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert = tmp_path / "server.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private = tmp_path / "server.key"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, private


def test_over_https_the_server_is_verified_as_httpx_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, private = _certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, private)
    with _blob_server(["ok"], tls) as (base, seen):
        assert base.startswith("https://")
        # Trusted through SSL_CERT_FILE, which httpx honours too: the body arrives whole.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        transport = Transport(base, "t", timeout=10, retries=0)
        try:
            assert _receive(transport, tmp_path / "blob") == hashlib.sha256(BODY).hexdigest()
        finally:
            transport.close()
        # Not trusted (certifi's roots): refused before any byte is read, one StorageError.
        monkeypatch.delenv("SSL_CERT_FILE")
        transport = Transport(base, "t", timeout=10, retries=0)
        try:
            with pytest.raises(StorageError, match="cannot reach the registry server") as caught:
                _receive(transport, tmp_path / "untrusted")
        finally:
            transport.close()
    assert caught.value.exit_code == EXIT_STORAGE
    assert not (tmp_path / "untrusted").exists()
    assert len(seen) == 1  # the untrusted attempt never got as far as a request
