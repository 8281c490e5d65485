"""Prometheus metrics of one server process: requests, latencies, gate decisions."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["ServerMetrics"]


class ServerMetrics:
    """The process's own collector registry (not the global default, so two apps in one
    process, as in tests, never share or clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlprov_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlprov_http_request_duration_seconds",
            "Time to answer an HTTP request (until the response started), by route.",
            ("route", "method"),
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.gate_decisions = Counter(
            "mlprov_gate_decisions",
            "Alias and stage moves asked for through the API, by the gate's decision.",
            ("pointer", "decision"),
            registry=self.registry,
        )
        self.access_denials = Counter(
            "mlprov_access_denials",
            "Requests refused before any work: 401 unauthenticated, 403 unauthorised, "
            "429 rate-limited.",
            ("status",),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
