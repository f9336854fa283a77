"""Private servers for tests that need their own: a redis-server with a password or TLS, and
certificates made with ``openssl`` (a CA, a server cert for 127.0.0.1, a client cert)."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fraudstream.stack import free_port


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certs(directory: Path) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make test certificates")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=fraudstream-test-ca")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN=fraudstream-test-{name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", "san.cnf")
    d = directory
    return Certs(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


class RedisServer:
    """A redis-server of our own on a free port; ``stop()``/``start()`` simulate an outage."""

    def __init__(self, workdir: Path, *options: str, tls: bool = False):
        self.port = free_port()
        self.workdir = workdir
        self.options = options
        self.tls = tls
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        ports = ["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]
        self.process = subprocess.Popen(
            [binary, *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
             *self.options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _accepts(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server {' '.join(self.options)} did not start on {self.port}")
            time.sleep(0.02)  # a process start-up: nothing to poll but the port
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def http_get(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError):
        return 0, b""


async def until_status(url: str, status: int, timeout_s: float = 30.0) -> bytes:
    """Poll ``url`` until it answers ``status``; fail with the last answer at the deadline."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    while True:
        code, body = await asyncio.to_thread(http_get, url)
        if code == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} answered {code} {body[:300]!r}, not {status}, for {timeout_s}s")
        await asyncio.sleep(0.05)  # between probes of a server in another thread or process
