"""The page, served through Faust web views on every worker.

- ``/dashboard/``: the HTML page (``index.html``), which opens the live feed;
- ``/dashboard/events``: Server-Sent Events, one summary (``tally.summarize``) whenever it
  changes, at most once a second;
- ``/dashboard/state.json``: the same summary once;
- ``/healthz`` and ``/readyz``: the probes (``probes.py``), 200 or 503 with a JSON reason.

Every worker serves them. The counts live on the worker that owns the ``dashboard``
table's one partition; any other worker asks that owner over HTTP (Faust's router knows
where it is) and, while nobody is known to own it (during a rebalance), answers from its
own copy, saying so in ``source``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web as aioweb
from faust.web import Request, Response, View

from services.dashboard import probes
from services.dashboard.app import Dashboard
from services.dashboard.tally import summarize
from shared.lifecycle import wait_set

PAGE = (Path(__file__).parent / "index.html").read_bytes()
TICK_S = 1.0
KEEPALIVE_TICKS = 15
PEER_TIMEOUT_S = 2.0
log = logging.getLogger(__name__)


class Summaries:
    """Where this worker gets the summary it shows: its own table, or the owner's."""

    def __init__(self, dashboard: Dashboard):
        self.dashboard = dashboard
        self.app = dashboard.app

    def owner(self) -> str | None:
        """The URL of the worker that owns the dashboard table (its one partition), if one is known."""
        changelog = self.dashboard.state.changelog_topic.get_topic_name()
        for url, topics in self.app.router.table_metadata(self.dashboard.state.name).items():
            if 0 in topics.get(changelog, ()):
                return str(url).rstrip("/")
        return None

    def local(self, source: str) -> dict[str, Any]:
        return summarize(self.dashboard.sections()) | {"source": source, "served_by": self.me(), "owns": self.owns()}

    def me(self) -> str:
        return str(self.app.conf.canonical_url).rstrip("/")

    def owns(self) -> list[str]:
        """The partitions this worker consumes (what ops look at when a replica lags)."""
        return sorted(f"{tp.topic}:{tp.partition}" for tp in self.app.assignor.assigned_actives())

    async def current(self) -> dict[str, Any]:
        me = self.me()
        owner = self.owner()
        if owner is None:
            return self.local("standby")
        if owner == me:
            return self.local("owner")
        try:
            timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
            async with self.app.http_client.get(f"{owner}/dashboard/state.json?local=1", timeout=timeout) as resp:
                resp.raise_for_status()
                summary = await resp.json()
            return summary | {"source": f"owner {owner}", "served_by": me, "owns": self.owns()}
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("dashboard owner %s did not answer (%s); serving this worker's copy", owner, exc)
            return self.local("standby")


def add_views(dashboard: Dashboard, stop: asyncio.Event) -> None:
    app = dashboard.app
    summaries = Summaries(dashboard)

    @app.page("/dashboard/")
    async def page(view: View, request: Request) -> Response:
        return view.bytes(PAGE, content_type="text/html")

    @app.page("/dashboard/state.json")
    async def state(view: View, request: Request) -> Response:
        # local=1: a peer asks for this worker's own table; never forward again (no ping-pong)
        local = request.query.get("local") == "1"
        summary = summaries.local("owner") if local else await summaries.current()
        return view.bytes(orjson.dumps(summary), content_type="application/json")

    @app.page("/healthz")
    async def healthz(view: View, request: Request) -> Response:
        return verdict(view, *probes.liveness(app))

    @app.page("/readyz")
    async def readyz(view: View, request: Request) -> Response:
        return verdict(view, *probes.readiness(app))

    # faust types a page as returning its own Response and taking its own Request; under its aiohttp
    # driver a page may return any aiohttp StreamResponse and is given aiohttp's Request
    @app.page("/dashboard/events")  # type: ignore[arg-type]
    async def events(view: View, request: Request) -> aioweb.StreamResponse:
        response = aioweb.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)  # type: ignore[arg-type]
        last, quiet = b"", 0
        try:
            while not stop.is_set():
                body = orjson.dumps(await summaries.current())
                if body != last:
                    await response.write(b"data: " + body + b"\n\n")
                    last, quiet = body, 0
                elif (quiet := quiet + 1) >= KEEPALIVE_TICKS:
                    await response.write(b": keep-alive\n\n")  # proxies close silent streams
                    quiet = 0
                await wait_set(stop, TICK_S)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the browser went away
        return response


def verdict(view: View, ok: bool, detail: dict[str, Any]) -> Response:
    body = orjson.dumps({"status": "ok" if ok else "unavailable", **detail})
    return view.bytes(body, content_type="application/json", status=200 if ok else 503)
