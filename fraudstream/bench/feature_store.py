"""A synthetic card stream, and how fast and how small the feature store is on it.

``python -m fraudstream.bench.feature_store [--tx-per-card N ...]`` runs against
``FRAUDSTREAM_REDIS_URL`` under a throw-away key prefix and prints, for each card density,
applied transactions per second, the CPU time each transaction costs this process and the
Redis server (the server's figure includes any other client's work at the same time),
Redis round trips and commands (those the scripts make included, a figure the machine's
load does not change) per transaction, and bytes per card, merchant and stored vector.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import random
import statistics
import time
import uuid
from datetime import UTC, datetime

import redis.asyncio as aioredis

from services.features.store import FeatureStore
from shared.events import Label, Transaction
from shared.settings import Settings

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


class CountingConnection(aioredis.Connection):
    """A connection that counts its writes: one per command or pipeline, i.e. round trips."""

    sent = 0

    async def send_packed_command(self, command, check_health=True):
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


def counting_client(url: str) -> aioredis.Redis:
    return aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(url, connection_class=CountingConnection))


def synthetic_stream(seed: int, n: int, cards: int = 200, merchants: int = 60, days: float = 45.0,
                     max_late_s: float = 3000.0) -> list[Transaction | Label]:
    """``n`` transactions in arrival order with late ones (up to ``max_late_s`` behind the
    newest), redeliveries, hot cards in bursts, transactions exactly 1 h / 24 h after an
    earlier one, and fraud labels that arrive days later (some for unknown tx ids)."""
    rng = random.Random(seed)
    home = [rng.choice(["FR", "DE", "ES", "GB"]) for _ in range(cards)]
    usual = [rng.choice(["pos", "ecom"]) for _ in range(cards)]
    favourites = [[rng.randrange(merchants) for _ in range(4)] for _ in range(cards)]
    fixed_amount = [round(rng.uniform(5, 50), 2) if rng.random() < 0.1 else None for _ in range(cards)]
    risk = [rng.choice([0.01, 0.03, 0.15]) for _ in range(merchants)]
    out: list[Transaction | Label] = []
    echoes: list[tuple[float, int]] = []  # (ts, card): a transaction exactly one window later
    labels: list[tuple[float, int, Label]] = []  # (arrival time, seq, label)
    clock, card = START, 0
    for i in range(n):
        clock += rng.expovariate(n / (days * 86400))
        while labels and labels[0][0] <= clock:
            out.append(heapq.heappop(labels)[2])
        if echoes and echoes[0][0] <= clock:
            ts, card = heapq.heappop(echoes)
        else:
            card = card if rng.random() < 0.3 else int(cards * rng.random() ** 2)  # some cards are hot
            ts = clock - (rng.uniform(0, max_late_s) if rng.random() < 0.05 else 0.0)
            ts = float(round(ts)) if rng.random() < 0.7 else round(ts, 6)
        if ts < clock - max_late_s:
            ts = clock  # an echo that came too late for the lateness bound
        if rng.random() < 0.03:
            heapq.heappush(echoes, (ts + rng.choice([3600.0, 86400.0]), card))
        merchant = rng.choice(favourites[card]) if rng.random() < 0.8 else rng.randrange(merchants)
        amount = fixed_amount[card] or round(rng.lognormvariate(3.5, 1.0) + 0.5, 2)
        tx = Transaction(
            tx_id=f"tx{seed}-{i}", ts=datetime.fromtimestamp(ts, UTC), card_id=f"card{card}",
            merchant_id=f"m{merchant}", amount=amount, currency="EUR",
            channel=usual[card] if rng.random() < 0.85 else rng.choice(["pos", "ecom", "atm", "moto"]),
            mcc="5411", country=home[card] if rng.random() < 0.95 else rng.choice(["US", "BR", "NG"]),
        )  # fmt: skip
        out.append(tx)
        if rng.random() < 0.01:
            out.append(tx)  # redelivered: at-least-once
        if rng.random() < risk[merchant] or rng.random() < 0.002:
            labelled_at = ts + rng.uniform(600, 10 * 86400)
            tx_id = tx.tx_id if rng.random() < 0.95 else f"unknown-{i}"
            label = Label(tx_id=tx_id, card_id=tx.card_id, is_fraud=rng.random() < 0.9,
                          labelled_at=datetime.fromtimestamp(labelled_at, UTC))
            heapq.heappush(labels, (labelled_at + rng.uniform(0, 2 * 86400), i, label))
    return out


async def _server_cpu_s(redis: aioredis.Redis) -> float:
    cpu = await redis.info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


async def _commands(redis: aioredis.Redis) -> dict[str, int]:
    """Calls per command so far, those scripts make included (the server's, all clients')."""
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def memory_usage(redis: aioredis.Redis, keys: list[str]) -> float:
    """Mean MEMORY USAGE over the keys that exist (bytes)."""
    pipe = redis.pipeline(transaction=False)
    for k in keys:
        pipe.memory_usage(k, samples=0)
    sizes = [s for s in await pipe.execute() if s is not None]
    return statistics.fmean(sizes) if sizes else 0.0


async def bench_store(settings: Settings, n: int = 20_000, batch: int = 500, cards: int = 2_000) -> dict:
    redis = counting_client(settings.redis_url)
    store = FeatureStore(redis, settings)
    txs = [e for e in synthetic_stream(seed=11, n=n, cards=cards, merchants=300) if isinstance(e, Transaction)]
    try:
        await store.load_scripts()
        redis_cpu, commands = await _server_cpu_s(redis), await _commands(redis)
        sent, started, cpu = CountingConnection.sent, time.perf_counter(), time.process_time()
        for i in range(0, len(txs), batch):
            await store.apply(txs[i : i + batch])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        round_trips = CountingConnection.sent - sent
        redis_cpu = await _server_cpu_s(redis) - redis_cpu
        calls = {k: v - commands.get(k, 0) for k, v in (await _commands(redis)).items()}
        card_ids = sorted({tx.card_id for tx in txs})
        merchant_ids = sorted({tx.merchant_id for tx in txs})
        p = settings.redis_prefix
        sample = txs[:: max(1, len(txs) // 1000)]
        return {
            "transactions": len(txs),
            "batch": batch,
            "applied_tx_per_s": round(len(txs) / elapsed),
            "client_cpu_us_per_tx": round(cpu / len(txs) * 1e6, 1),
            "redis_cpu_us_per_tx": round(redis_cpu / len(txs) * 1e6, 1),
            "round_trips_per_tx": round_trips / len(txs),
            # what the Lua costs, counted, so comparable on a busy machine
            "redis_commands_per_tx": round(sum(calls.values()) / len(txs), 2),
            "busiest_commands": ", ".join(f"{k} {v / len(txs):.2f}" for k, v in
                                          sorted(calls.items(), key=lambda kv: -kv[1])[:6]),  # fmt: skip
            "tx_per_card": len(txs) / len(card_ids),
            "bytes_per_card": round(sum([
                await memory_usage(redis, [f"{p}:{{card:{c}}}:{part}" for c in card_ids])
                for part in ("tx", "merchants", "last", "windows")
            ])),  # fmt: skip
            "bytes_per_merchant": round(await memory_usage(redis, [f"{p}:{{merchant:{m}}}:tx" for m in merchant_ids])),
            "bytes_per_stored_vector": round(
                await memory_usage(redis, [f"{p}:{{card:{t.card_id}}}:fv:{t.tx_id}" for t in sample])
                + await memory_usage(redis, [f"{p}:{{merchant:{t.merchant_id}}}:fv:{t.tx_id}" for t in sample])
            ),
        }
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await redis.unlink(*keys[i : i + 1000])
        await redis.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--tx-per-card", type=int, nargs="+", default=[10],
                        help="mean transactions per card (cards = transactions / this); several for a table")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    for density in args.tx_per_card:
        settings = Settings(redis_prefix=f"fsbench-{uuid.uuid4().hex[:8]}")
        cards = max(1, args.transactions // density)
        figures = asyncio.run(bench_store(settings, n=args.transactions, batch=args.batch, cards=cards))
        print(f"{'cards':>24}  {cards:,}")
        for name, value in figures.items():
            shown = f"{value:,.4g}" if isinstance(value, float) else value if isinstance(value, str) else f"{value:,}"
            print(f"{name:>24}  {shown}")
        print()


if __name__ == "__main__":
    main()
