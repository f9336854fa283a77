"""The HTTP side of :mod:`shared.health`: ``/metrics``, ``/healthz`` and ``/readyz`` on one port.

It runs in its own thread (like prometheus_client's server), so a blocked event loop still
gets an answer: a stale heartbeat, which is exactly what liveness is for.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import metrics
from shared.health import HEALTH, Health

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    health: Health

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            metrics.HEALTHY.set(self.health.liveness()[0])
            metrics.READY.set(self.health.readiness()[0])
            self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            ok, detail = self.health.liveness() if path == "/healthz" else self.health.readiness()
            body = json.dumps({"status": "ok" if ok else "unavailable", **detail}).encode()
            self._send(200 if ok else 503, body, "application/json")
        else:
            self._send(404, b'{"status": "not found"}', "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # probes every few seconds: not worth a line
        pass


class HealthServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``port`` (0: a free one), in a daemon thread."""

    def __init__(self, port: int, health: Health = HEALTH, host: str = "0.0.0.0"):
        handler = type("Handler", (_Handler,), {"health": health})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="health-http", daemon=True)
        self.thread.start()
        log.info("serving /metrics, /healthz and /readyz on port %d", self.port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(port: int) -> None:
    """Serve /metrics, /healthz and /readyz on ``port`` (0: off) for the life of the process."""
    if port:
        HealthServer(port)
