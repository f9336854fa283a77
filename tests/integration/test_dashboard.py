"""The dashboard against the real broker: every input topic shows up on its page, exactly.

The page's numbers are read from its own live feed (Server-Sent Events), so a test waits
for an update instead of sleeping, and fails with the last summary seen at its deadline.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Callable

import aiohttp
import orjson
import pytest

from fraudstream.stack import free_port
from services.dashboard import service
from services.dashboard.app import Dashboard
from shared import events as ev
from shared.codec import decode, encode
from shared.settings import Settings
from shared.topics import ALERTS, DEADLETTER, DRIFT_EVENTS, LABELS, MODEL_VERSIONS, SCORES
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SHA = "0" * 64


def dashboard_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"dashboard_port": free_port(), "dashboard_host": "127.0.0.1"})


def url(settings: Settings, path: str = "") -> str:
    return f"http://127.0.0.1:{settings.dashboard_port}/dashboard/{path}"


async def wait_summary(settings: Settings, done: Callable[[dict], bool], timeout_s: float = 60.0) -> dict[str, Any]:
    """Follow the page's live feed until a summary satisfies ``done``; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] | None = None
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    async with http.get(url(settings, "events")) as resp:
                        async for line in resp.content:
                            if line.startswith(b"data: "):
                                last = orjson.loads(line[6:])
                                if done(last):
                                    return last
            except aiohttp.ClientConnectionError:
                # not listening yet: the app is still joining its group; retry until the deadline
                await asyncio.sleep(0.2)
            except TimeoutError:
                break
    seen = last and {k: last[k] for k in ("totals", "source", "served_by", "owns")}
    raise AssertionError(f"no summary satisfied the condition within {timeout_s}s; last seen: {seen}")


def score(i: int, n: int) -> ev.Score:
    return ev.Score(tx_id=f"t{i}", card_id=f"c{i % 6}", ts=T0, score=i / n, decision="approve", model_version="v1")


def scores_of(first: int, count: int, n: int) -> list[tuple[bytes, bytes]]:
    return [(f"c{i % 6}".encode(), encode(score(i, n))) for i in range(first, first + count)]


def alert(i: int) -> ev.Alert:
    reason = ev.Reason(feature="amount_z", value=4.2, contribution=1.3, text="amount far above the card's usual")
    return ev.Alert(alert_id=f"a{i}", tx_id=f"t{i}", card_id="c1", merchant_id="m9", ts=T0, amount=950.0 + i,
                    currency="EUR", country="FR", channel="ecom", score=0.95, severity="high", decision="decline",
                    model_version="v1", reasons=[reason])


def model(version: str, parent: str | None, reason: str) -> ev.ModelVersionPublished:
    return ev.ModelVersionPublished(version=version, parent=parent, reason=reason, status="champion",
                                    metrics={"average_precision": 0.61}, artifact_ref=f"redis:{version}",
                                    artifact_sha256=SHA)


def letter(service_name: str, error: str, offset: int) -> ev.DeadLetter:
    return ev.DeadLetter(service=service_name, topic="transactions.raw", partition=0, offset=offset,
                         payload=b"{", error=error)


async def test_every_input_shows_on_the_page_exactly_once(settings, start_service):
    s = dashboard_settings(settings)
    start_service(service.run, s)
    drift = ev.DriftDetected(kind="feature", feature="amount_z", statistic="psi", value=0.31, threshold=0.2,
                             reference=ev.Window(count=2000), current=ev.Window(count=2000), severity="warning")
    await produce(s, SCORES, scores_of(0, 30, 30) + [(b"c0", b"garbage")])
    await produce(s, ALERTS, [(b"c1", encode(alert(i))) for i in range(3)])
    await produce(s, DRIFT_EVENTS, [(b"feature", encode(drift))])
    await produce(s, MODEL_VERSIONS, [(b"v1", encode(model("v1", None, "initial"))),
                                      (b"v2", encode(model("v2", "v1", "retrain")))])
    await produce(s, DEADLETTER, [(None, encode(letter("ingest", "not JSON: unexpected character", 7))),
                                  (None, encode(letter("scoring", "malformed: amount", 8)))])

    first = await wait_summary(s, lambda x: x["totals"]["scores"] == 30 and x["totals"]["deadletters"] == 3
                               and x["totals"]["models"] == 2 and x["totals"]["alerts"] == 3
                               and x["totals"]["drift"] == 1)
    assert [m["version"] for m in first["models"]] == ["v2", "v1"]  # newest first
    assert first["alerts"][0]["reasons"] == ["amount far above the card's usual"]
    assert first["drift"][0]["statistic"] == "psi"
    assert sum(first["score_histogram"]) == 30
    assert first["deadletter_reasons"] == [{"reason": "dashboard: not JSON", "count": 1},
                                           {"reason": "ingest: not JSON", "count": 1},
                                           {"reason": "scoring: malformed", "count": 1}]

    # Labels: the 5 frauds are t25..t29; the alert threshold (0.8) flags t24..t29.
    labels = [ev.Label(tx_id=f"t{i}", card_id=f"c{i % 6}", is_fraud=i >= 25, labelled_at=T0) for i in range(30)]
    unknown = ev.Label(tx_id="never-scored", card_id="c0", is_fraud=True, labelled_at=T0)
    await produce(s, LABELS, [(f"c{i % 6}".encode(), encode(label)) for i, label in enumerate(labels)]
                  + [(b"c0", encode(unknown))])
    joined = await wait_summary(s, lambda x: x["totals"]["labels"] == 31)
    assert {k: joined["totals"][k] for k in ("tp", "fp", "fn", "tn", "joined", "waiting")} == \
        {"tp": 5, "fp": 1, "fn": 0, "tn": 24, "joined": 30, "waiting": 1}
    assert (joined["precision"], joined["recall"]) == (0.8333, 1.0)
    assert joined["totals"]["scores"] == 30

    # The undecodable score was dead-lettered with its original bytes and the reason.
    async with Collector(s, DEADLETTER) as seen:
        await seen.until(lambda c: len(c.of(DEADLETTER)) == 3)
    own = [decode(r.value, ev.DeadLetter) for r in seen.of(DEADLETTER)]
    own = [d for d in own if d.service == "dashboard"]
    assert [(d.payload, d.topic, d.error.split(":")[0]) for d in own] == [(b"garbage", s.topic(SCORES), "not JSON")]


async def test_a_label_that_overtakes_its_score_waits_for_it(settings, start_service):
    s = dashboard_settings(settings)
    start_service(service.run, s)
    # t8 and t9 are frauds; the alert threshold (0.8) flags t8 and t9 of 10 scores i/10.
    labels = [ev.Label(tx_id=f"t{i}", card_id=f"c{i % 6}", is_fraud=i >= 8, labelled_at=T0) for i in range(10)]
    await produce(s, LABELS, [(f"c{i % 6}".encode(), encode(label)) for i, label in enumerate(labels)])
    waiting = await wait_summary(s, lambda x: x["totals"]["labels"] == 10)
    assert (waiting["totals"]["waiting"], waiting["precision"]) == (10, None)

    await produce(s, SCORES, scores_of(0, 10, 10))
    joined = await wait_summary(s, lambda x: x["totals"]["scores"] == 10 and x["totals"]["joined"] == 10)
    assert {k: joined["totals"][k] for k in ("tp", "fp", "fn", "tn", "labels", "waiting")} == \
        {"tp": 2, "fp": 0, "fn": 0, "tn": 8, "labels": 10, "waiting": 0}


async def test_page_and_snapshot_are_served(settings, start_service):
    s = dashboard_settings(settings)
    start_service(service.run, s)
    await produce(s, SCORES, scores_of(0, 4, 4))
    await wait_summary(s, lambda x: x["totals"]["scores"] == 4)
    async with aiohttp.ClientSession() as http:
        async with http.get(url(s)) as page:
            assert page.status == 200 and page.content_type == "text/html"
            assert 'new EventSource("events")' in await page.text()
        async with http.get(url(s, "state.json")) as snap:
            state = await snap.json()
    assert state["totals"]["scores"] == 4 and state["source"] == "owner"
    assert state["score_histogram"] == [1, 0, 1, 0, 0, 1, 0, 1, 0, 0]


async def test_a_crashed_part_of_the_app_stops_the_service(settings):
    """Table recovery crashing (as Tansu's wrong highwater once made it) must not leave a frozen page."""
    app = Dashboard(dashboard_settings(settings)).app
    await app.start()
    try:
        await app.tables.recovery.crash(RuntimeError("recovery failed"))
        with pytest.raises(service.DashboardCrashed, match="recovery failed"):
            await asyncio.wait_for(service.until_stopped_or_crashed(app, asyncio.Event()), timeout=10)
    finally:
        await app.stop()
