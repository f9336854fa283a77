"""The ``replay`` and ``evaluate`` commands (registered in ``fraudstream/cli.py``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from queue import Queue
from typing import Annotated

import typer

from fraudstream.replay.source import Columns, Stream, parse_duration
from shared.settings import Settings

REPLAY_SERVICES = ["ingest", "features", "scoring", "learner"]
DAY_S = 86400.0

File = Annotated[Path, typer.Argument(help="CSV of transactions, one per row, with a header",
                                      exists=True, dir_okay=False, readable=True)]
TxId = Annotated[str | None, typer.Option("--tx-id", help="transaction id column (none: rows are numbered)")]
Time = Annotated[str, typer.Option("--time", help="event time column: ISO 8601 (naive = UTC) or epoch seconds")]
Card = Annotated[str, typer.Option("--card", help="card id column")]
Merchant = Annotated[str, typer.Option("--merchant", help="merchant id column")]
Amount = Annotated[str, typer.Option("--amount", help="amount column")]
LabelCol = Annotated[str | None, typer.Option("--label", help="fraud label column: 1/0, true/false, yes/no")]
Currency = Annotated[str | None, typer.Option("--currency", help="currency column (missing: EUR)")]
Channel = Annotated[str | None, typer.Option("--channel", help="channel column: pos/ecom/atm/moto (missing: pos)")]
Mcc = Annotated[str | None, typer.Option("--mcc", help="merchant category code column (missing: 5999)")]
Country = Annotated[str | None, typer.Option("--country", help="merchant country column (missing: ZZ)")]
Device = Annotated[str | None, typer.Option("--device", help="device id column (missing: none)")]
LabelDelay = Annotated[str, typer.Option("--label-delay", help="labels reach the learner this long after their "
                                                                "transaction, in event time: 7d, 12h, 30m, 0")]
ScoresOut = Annotated[Path | None, typer.Option("--scores-out", help="write one row per scored transaction here")]
ReportJson = Annotated[Path | None, typer.Option("--report-json", help="write the evaluation report as JSON")]
Plots = Annotated[Path | None, typer.Option("--plots", help="write precision-recall and over-time PNGs here")]
Start = Annotated[datetime | None, typer.Option("--start", help="evaluate from this event time (UTC if naive)")]
End = Annotated[datetime | None, typer.Option("--end", help="evaluate before this event time (UTC if naive)")]


def replay_settings(base: Settings, label_delay_s: float) -> dict[str, float]:
    """What the services need to take history: old timestamps, labels 'from the future' of
    the wall clock, no implicit genuine label before the file's own, versions by label count.
    Settings field → value (``base.model_copy(update=...)``; ``as_env`` for processes)."""
    return {
        "max_age_days": 1e6,
        "max_future_skew_s": 1e12,
        "label_maturity_s": max(base.label_maturity_s, label_delay_s + DAY_S),
        "publish_every_s": 1e12,
    }


def as_env(overrides: dict[str, float]) -> dict[str, str]:
    """
    >>> as_env({"max_age_days": 1e6})
    {'FRAUDSTREAM_MAX_AGE_DAYS': '1000000.0'}
    """
    return {f"FRAUDSTREAM_{name.upper()}": str(value) for name, value in overrides.items()}


def why_untrained(times: list[float], labels: list[tuple[float, bool]], delay_s: float, publish_every: int,
                  genuine_rate: float) -> str:
    """Why every score came from an untrained model, in words: what a user sees instead of an
    AUC of 0.5 and an alert rate that means nothing. ``times`` are the transactions' event
    times, ``labels`` the (event time, is fraud) of the labelled ones.

    >>> day = 86400.0
    >>> print(why_untrained([0, 2 * day], [(day, True)], 7 * day, 1000, 0.2))  # doctest: +NORMALIZE_WHITESPACE
    warning: no model was trained, so every score is an untrained model's: the label delay (7 days) is
    longer than the file's span (2.0 days), so no label was due before its end. Use a shorter
    --label-delay or a longer file.
    >>> labels = [(day, True)] + [(day, False)] * 1500
    >>> print(why_untrained([0, 20 * day], labels, 7 * day, 1000, 0.2))  # doctest: +NORMALIZE_WHITESPACE
    warning: no model was trained, so every score is an untrained model's: 1,501 labels were due before the
    file ended, of which ~301 are learned (every fraud, genuine ones at FRAUDSTREAM_GENUINE_SAMPLE_RATE=0.2),
    and the first model version needs 1,000 (FRAUDSTREAM_PUBLISH_EVERY_LABELS). Use a longer file, a shorter
    --label-delay or a smaller FRAUDSTREAM_PUBLISH_EVERY_LABELS.
    """
    head = "warning: no model was trained, so every score is an untrained model's: "
    span_s = max(times) - min(times) if times else 0.0
    if delay_s >= span_s:
        return (head + f"the label delay ({delay_s / 86400:g} days) is longer than the file's span "
                f"({span_s / 86400:.1f} days), so no label was due before its end. Use a shorter --label-delay "
                "or a longer file.")
    end = max(times)
    due = [fraud for ts, fraud in labels if ts + delay_s <= end]
    learned = sum(due) + round((len(due) - sum(due)) * genuine_rate)
    return (head + f"{len(due):,} label{'s were' if len(due) != 1 else ' was'} due before the file ended, of "
            f"which ~{learned:,} are learned (every fraud, genuine ones at FRAUDSTREAM_GENUINE_SAMPLE_RATE="
            f"{genuine_rate:g}), and the first model version needs {publish_every:,} "
            "(FRAUDSTREAM_PUBLISH_EVERY_LABELS). Use a longer file, a shorter --label-delay or a smaller "
            "FRAUDSTREAM_PUBLISH_EVERY_LABELS.")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def _finish(rows, scores_out: Path | None, report_json: Path | None, plots: Path | None,
            start: datetime | None, end: datetime | None) -> None:
    from fraudstream.evaluation.report import write_scores

    if scores_out:
        written = write_scores(rows, scores_out)
        typer.echo(f"wrote {written:,} scores to {scores_out}")
    _report(rows, report_json, plots, start, end)


def _report(rows, report_json: Path | None, plots: Path | None, start: datetime | None,
            end: datetime | None) -> None:
    from fraudstream.evaluation.outputs import write_outputs
    from fraudstream.evaluation.report import build_report

    if not any(r.label is not None for r in rows):
        typer.echo("no labels in the file: nothing to evaluate")
        return
    utc = lambda d: d if d is None or d.tzinfo else d.replace(tzinfo=UTC)  # noqa: E731
    report = build_report(rows, start=utc(start), end=utc(end))
    typer.echo(report.table())
    for path in write_outputs(rows, report, report_json, plots):
        typer.echo(f"wrote {path}")


def _columns(tx_id, time_, card, merchant, amount, label, currency, channel, mcc, country, device) -> Columns:
    return Columns(time=time_, card=card, merchant=merchant, amount=amount, tx_id=tx_id, label=label,
                   currency=currency, channel=channel, mcc=mcc, country=country, device=device)


def replay(
    file: File, tx_id: TxId = "tx_id", time_: Time = "ts", card: Card = "card_id", merchant: Merchant = "merchant_id",
    amount: Amount = "amount", label: LabelCol = "is_fraud", currency: Currency = "currency",
    channel: Channel = "channel", mcc: Mcc = "mcc", country: Country = "country", device: Device = "device_id",
    label_delay: LabelDelay = "7d", scores_out: ScoresOut = None, report_json: ReportJson = None,
    plots: Plots = None, start: Start = None, end: End = None,
    external: Annotated[bool, typer.Option(help="use the running services at FRAUDSTREAM_KAFKA_BOOTSTRAP / "
                                                "REDIS_URL (started with the settings replay_settings() lists) "
                                                "instead of a local stack")] = False,
    max_in_flight: Annotated[int, typer.Option(help="transactions sent and not yet scored, at most")] = 20_000,
) -> None:
    """Stream a historical CSV through the real pipeline (broker, ingest, features, scoring,
    learner) in event time, with labels delayed; print the evaluation report (other k,
    alert rate or threshold: ``fraudstream report`` on the --scores-out file). The file is
    read as it is sent: rows may be out of time order by up to 10,000 rows."""
    from fraudstream.processes import sigterm_as_interrupt
    from fraudstream.replay.run import MORE

    delay_s = parse_duration(label_delay)
    columns = _columns(tx_id, time_, card, merchant, amount, label, currency, channel, mcc, country, device)
    try:
        with sigterm_as_interrupt(), ScoresFile(scores_out) as on_scored, \
                open(file, newline="", encoding="utf-8") as handle:
            stream = Stream(handle, columns, delay_s, Settings().max_amount, more=MORE)
            replayed = Replayed(stream, columns, max_in_flight, on_scored, file)
            outcome = asyncio.run(replayed.run(Settings())) if external else _replay_locally(replayed, delay_s)
    except KeyboardInterrupt:
        typer.echo("interrupted: stopped what the replay started (services, broker, Redis)", err=True)
        raise typer.Exit(130) from None
    rate = outcome.sent_tx / outcome.wall_s if outcome.wall_s else 0.0
    scores = outcome.scores
    typer.echo(f"replayed {outcome.sent_tx:,} transactions and {outcome.sent_labels:,} labels ({stream.frauds:,} "
               f"frauds) in {outcome.wall_s:.0f}s ({rate:,.0f} transactions/s); scored {len(scores):,} (kept in "
               f"{scores.nbytes / 1e6:,.1f} MB); refused: {_counts(outcome.refused)}")
    if stream.refused:
        typer.echo(f"rows refused while reading (not sent): {_counts(stream.refused)}")
    if outcome.labels_refused:
        typer.echo(f"labels refused: {_counts(outcome.labels_refused)}")
    if scores_out:
        typer.echo(f"wrote {len(scores):,} scores to {scores_out}")
    if len(scores) and not scores.trained:
        import numpy as np

        settings = Settings()
        settings = settings.model_copy(update=replay_settings(settings, delay_s))  # what the replay's learner ran with
        ts, labels = np.frombuffer(scores.ts, dtype=np.float64), np.frombuffer(scores.label, dtype=np.int8)
        labelled = labels >= 0
        typer.echo(why_untrained(ts.tolist(), list(zip(ts[labelled].tolist(), (labels[labelled] == 1).tolist())),
                                 delay_s, settings.publish_every_labels, settings.genuine_sample_rate), err=True)
    _report(list(scores.rows()), report_json, plots, start, end)


class ScoresFile(AbstractContextManager):
    """The --scores-out file, written as the scores come by a thread of its own, at most
    ``backlog`` rows behind (the replay waits beyond: memory stays bounded). Entered, it is
    the replay's ``on_scored``, or None. A failed write is raised on exit."""

    def __init__(self, path: Path | None, backlog: int = 10_000):
        self.path = path
        self.queue: Queue = Queue(maxsize=backlog)
        self.writer: threading.Thread | None = None
        self.error: BaseException | None = None

    def __enter__(self):
        if self.path is None:
            return None
        from fraudstream.evaluation.report import ScoredRow

        self.row = ScoredRow
        self.writer = threading.Thread(target=self._write, args=(self.path,), daemon=True)
        self.writer.start()
        return self.put

    def _write(self, path: Path) -> None:
        from fraudstream.evaluation.report import write_scores

        rows = iter(self.queue.get, None)
        try:
            write_scores(rows, path)
        except Exception as exc:  # raised in the replay's thread on exit
            self.error = exc
            for _ in rows:  # keep taking, so that the replay never waits on a dead writer
                pass

    def put(self, row, score: float, version: str) -> None:
        self.queue.put(self.row(row.tx_id, datetime.fromtimestamp(row.ts, UTC), row.card, row.merchant, score,
                                version, row.label))

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.queue.put(None)
            self.writer.join()
        if self.error is not None and exc[0] is None:
            raise self.error


@dataclass
class Replayed:
    """One replay of a file: its events, how it shows progress and where its scores go."""

    stream: Stream
    columns: Columns
    max_in_flight: int
    on_scored: Callable | None
    file: Path

    async def run(self, settings: Settings):
        from fraudstream.replay.progress import progress
        from fraudstream.replay.run import replay as run_replay

        with progress("replayed", "transactions", self.file) as shown:
            outcome = await run_replay(settings, self.stream, columns=self.columns, max_in_flight=self.max_in_flight,
                                       on_progress=lambda o: shown.update(o.done), on_scored=self.on_scored)
        return outcome


def _replay_locally(replayed: Replayed, delay_s: float):
    from fraudstream.processes import start_services, stop_services
    from fraudstream.stack import LocalStack
    from shared.kafka import ensure_topics

    base = Settings(session_timeout_ms=3000, heartbeat_interval_ms=500, log_level="WARNING")
    with LocalStack(base) as stack:
        asyncio.run(ensure_topics(stack.settings))
        procs = start_services(REPLAY_SERVICES, stack.env() | as_env(replay_settings(base, delay_s)), stack.workdir)
        try:
            typer.echo(f"replaying through {', '.join(REPLAY_SERVICES)} (pids "
                       f"{', '.join(str(p.pid) for p in procs)}; logs in {stack.workdir})")
            return asyncio.run(replayed.run(stack.settings))
        finally:
            stop_services(procs)


Arms = Annotated[list[str] | None, typer.Option(
    "--arm", help="a model to run, NAME=KIND[:key=value,...] (repeat for several, side by side on one pass). "
                  "KIND: linear, arf, amf (online), hgb, forest (batch, refitted weekly), or loop (the learner "
                  "as configured: its champion and its scheduled batch refits, judged and promoted as live). "
                  "Keys: rate (genuine labels learned), lr, l2, clip (sd; 0: none), publish (labels per version), "
                  "features (base, shares, no_rates); batch: window_days, refit_days, trees; loop: window_days, "
                  "refit_days. "
                  "Default: the champion as configured")]


def evaluate(
    file: File, tx_id: TxId = "tx_id", time_: Time = "ts", card: Card = "card_id", merchant: Merchant = "merchant_id",
    amount: Amount = "amount", label: LabelCol = "is_fraud", currency: Currency = "currency",
    channel: Channel = "channel", mcc: Mcc = "mcc", country: Country = "country", device: Device = "device_id",
    label_delay: LabelDelay = "7d", scores_out: ScoresOut = None, report_json: ReportJson = None,
    plots: Plots = None, start: Start = None, end: End = None,
    kind: Annotated[str, typer.Option(help="the default arm's model kind: linear, arf or amf")] = "linear",
    arm: Arms = None,
    test_weeks: Annotated[int, typer.Option(help="judge on the last this many whole weeks of the file")] = 4,
) -> None:
    """The pipeline in one process without a broker (same features, learner and model code),
    streaming the file: several models side by side, judged on the last test weeks. The
    full report of the first model too with --scores-out, --report-json or --plots."""
    import numpy as np

    from fraudstream.evaluation.weekly import figures, last_weeks, table
    from fraudstream.replay.arms import parse_arm
    from fraudstream.replay.offline import evaluate as run_offline
    from fraudstream.replay.progress import progress

    try:
        # the linear champion through its numpy twin: the same figures (tests/unit/test_twin.py), ~10× cheaper
        specs = [parse_arm(a) for a in arm] if arm else [parse_arm(f"champion={'twin' if kind == 'linear' else kind}")]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--arm") from exc
    delay_s = parse_duration(label_delay)
    settings = Settings()
    settings = settings.model_copy(update=replay_settings(settings, delay_s))
    columns = _columns(tx_id, time_, card, merchant, amount, label, currency, channel, mcc, country, device)
    full_report = bool(scores_out or report_json or plots)
    began = time.monotonic()
    with open(file, newline="", encoding="utf-8") as handle:
        stream = Stream(handle, columns, delay_s, settings.max_amount)
        with progress("evaluated", "transactions", file) as shown:
            outcome = run_offline(settings, stream, specs, keep_ids=full_report, on_progress=shown.update)
    wall = time.monotonic() - began
    n = len(outcome.ts)
    typer.echo(f"evaluated {n:,} transactions and {stream.labels:,} labels ({stream.frauds:,} frauds) with "
               f"{len(specs)} model{'s' * (len(specs) > 1)} in {wall:.0f}s ({n / wall if wall else 0:,.0f} "
               f"transactions/s); refused: {_counts(stream.refused | outcome.refused)}")
    if not stream.labels:
        typer.echo("no labels in the file: nothing to evaluate")
        return
    ts, cards = np.frombuffer(outcome.ts, dtype=np.float64), np.frombuffer(outcome.card, dtype=np.int64)
    labels = np.frombuffer(outcome.label, dtype=np.int8)
    if not any(outcome.versions.values()):
        labelled = labels >= 0
        typer.echo(why_untrained(ts.tolist(), list(zip(ts[labelled].tolist(), (labels[labelled] == 1).tolist())),
                                 delay_s, settings.publish_every_labels, settings.genuine_sample_rate), err=True)
    try:
        lo, hi = last_weeks(ts, test_weeks)
    except ValueError as exc:
        typer.echo(f"fraudstream: {exc}: ask for fewer with --test-weeks, or give a longer file", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"test weeks: {datetime.fromtimestamp(lo, UTC):%Y-%m-%d} to {datetime.fromtimestamp(hi, UTC):%Y-%m-%d}"
               f" ({test_weeks} weeks, {int(((ts >= lo) & (ts < hi)).sum()):,} transactions, "
               f"{int(((ts >= lo) & (ts < hi) & (labels == 1)).sum()):,} frauds)")
    results = {name: figures(ts, cards, labels, np.frombuffer(col, dtype=np.float32), lo, hi)
               for name, col in outcome.scores.items()}
    typer.echo(table(results, outcome.versions))
    if full_report:
        from fraudstream.evaluation.report import ScoredRow

        first = specs[0].name
        assert outcome.tx_ids is not None  # kept: keep_ids=full_report
        scores, names = outcome.scores[first], {i: c for c, i in outcome.cards.items()}
        rows = [ScoredRow(tx, datetime.fromtimestamp(t, UTC), names[c], "", float(s), first,
                          None if y < 0 else bool(y))
                for tx, t, c, s, y in zip(outcome.tx_ids, outcome.ts, outcome.card, scores, outcome.label)]
        _finish(rows, scores_out, report_json, plots, start, end)
