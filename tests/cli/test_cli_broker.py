"""The ops commands against the real broker: tail stops at its limit; dead letters are
listed and redriven, and a redriven letter goes through once its refusal is fixed."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from services.ingest import service as ingest
from shared.codec import decode
from shared.events import DeadLetter, Transaction
from shared.topics import DEADLETTER, TRANSACTIONS_RAW, TRANSACTIONS_VALID
from tests.cli.helpers import env_of, fraudstream_async
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def tx(tx_id: str, amount: float = 42.5) -> bytes:
    return orjson.dumps(dict(tx_id=tx_id, ts=(NOW - timedelta(minutes=5)).isoformat(), card_id=f"card-{tx_id}",
                             merchant_id="m-1", amount=amount, currency="EUR", channel="pos", mcc="5411",
                             country="FR"))


async def test_tail_limit_prints_exactly_that_many(settings):
    await produce(settings, TRANSACTIONS_RAW, [(f"c{i}".encode(), tx(f"t{i}")) for i in range(300)])
    ran = await fraudstream_async("tail", "transactions.raw", "--from-beginning", "--limit", "5", env=env_of(settings))
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert len(lines) == 5
    assert all(" tx " in line and "tx=t" in line for line in lines)


async def _ingest_until(settings, valid: int, dead: int) -> Collector:
    """Run ingest (with ``settings``' limits) until the topics hold that many, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(settings, stop))
    try:
        async with Collector(settings, TRANSACTIONS_VALID, DEADLETTER) as seen:
            await seen.until(lambda c: len(c.of(TRANSACTIONS_VALID)) >= valid and len(c.of(DEADLETTER)) >= dead)
            await seen.settle(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return seen


async def test_dead_letters_are_listed_by_reason_and_redriven_after_the_fix(settings):
    strict = settings.model_copy(update={"max_amount": 1000.0})
    big = {"big-1": tx("big-1", 5000.0), "big-2": tx("big-2", 7500.0)}
    await produce(settings, TRANSACTIONS_RAW, [(b"k", tx("ok-1")), (b"k", b"not json"), (b"k1", big["big-1"]),
                                               (b"k2", big["big-2"]), (b"k", b"[1]")])
    seen = await _ingest_until(strict, valid=1, dead=4)
    assert (len(seen.of(TRANSACTIONS_VALID)), len(seen.of(DEADLETTER))) == (1, 4)

    env = env_of(settings)
    listed = await fraudstream_async("deadletter", "list", "--reason", "out of range", "--json", env=env)
    assert listed.code == 0, listed.err
    letters = [json.loads(line) for line in listed.out.splitlines()]
    assert sorted(letter["reason"] for letter in letters) == ["out of range", "out of range"]
    assert listed.err == "2 dead letters (2 out of range)\n"
    everything = await fraudstream_async("deadletter", "list", env=env)
    assert everything.err == "4 dead letters (2 malformed, 2 out of range)\n"
    assert len(everything.out.splitlines()) == 4

    dry = await fraudstream_async("deadletter", "redrive", "--reason", "out of range", "--dry-run", env=env)
    assert dry.code == 0 and dry.out.count("would redrive") == 2
    one = letters[0]["id"]
    redriven = await fraudstream_async("deadletter", "redrive", "--offset", one, env=env)
    assert (redriven.code, redriven.err) == (0, "redrove 1 dead letters\n")
    rest = await fraudstream_async("deadletter", "redrive", "--reason", "OUT OF RANGE", "--offset",
                                   letters[1]["id"], env=env)
    assert rest.code == 0, rest.err
    typo = await fraudstream_async("deadletter", "redrive", "--offset", one, "--offset", "0:999999", env=env)
    assert (typo.code, typo.err) == (1, "no dead letter at 0:999999; nothing redriven\n")
    none = await fraudstream_async("deadletter", "redrive", "--reason", "oversized", env=env)
    assert (none.code, none.err) == (1, "no dead letters match; nothing redriven\n")

    # The fix: the ceiling raised. The same group resumes after what it committed, so it
    # sees only the redriven records, byte for byte the refused ones.
    async with Collector(settings, TRANSACTIONS_RAW) as raw:
        await raw.until(lambda c: len(c.of(TRANSACTIONS_RAW)) >= 7)
    copies = Counter(r.value for r in raw.of(TRANSACTIONS_RAW))
    assert sorted(copies.values()) == [1, 1, 1, 2, 2] and {v for v, n in copies.items() if n == 2} == set(big.values())
    seen = await _ingest_until(settings, valid=3, dead=4)
    valid = sorted(decode(r.value, Transaction).tx_id for r in seen.of(TRANSACTIONS_VALID))
    assert valid == ["big-1", "big-2", "ok-1"]
    assert len(seen.of(DEADLETTER)) == 4
    assert {decode(r.value, DeadLetter).error.split(":")[0] for r in seen.of(DEADLETTER)} == {"malformed",
                                                                                            "out of range"}


async def test_lag_shows_a_groups_backlog_per_partition(settings):
    """Ingest commits after 300 records; 200 more arrive while it is stopped: lag says 200."""
    await produce(settings, TRANSACTIONS_RAW, [(f"c{i}".encode(), tx(f"l{i}")) for i in range(300)])
    await _ingest_until(settings, valid=300, dead=0)
    await produce(settings, TRANSACTIONS_RAW, [(f"c{i}".encode(), tx(f"m{i}")) for i in range(200)])
    ran = await fraudstream_async("lag", env=env_of(settings))
    assert ran.code == 0, ran.err
    group = settings.group("ingest")
    rows = [line.split() for line in ran.out.splitlines() if line.startswith(group)]
    per_partition = {int(r[2]): int(r[5]) for r in rows if r[1] == settings.topic(TRANSACTIONS_RAW)}
    assert sum(per_partition.values()) == 200
    assert [r[-1] for r in rows if r[1] == "(total)"] == ["200"]
