"""Operate: model versions, retrains, following topics, topic creation, dead letters."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from fraudstream.cli import deadletter
from shared.lifecycle import run_until_signal
from shared.settings import Settings
from shared.topics import TOPICS

PANEL = "Operate"

models_app = typer.Typer(help="List model versions, promote one, roll back.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models", rich_help_panel=PANEL)
    for command in (retrain, tail, topics, lag):
        app.command(rich_help_panel=PANEL)(command)
    app.add_typer(deadletter.app, name="deadletter", rich_help_panel=PANEL)


def tail(
    topic: Annotated[str, typer.Argument(help=f"one of: {', '.join(TOPICS)}")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning", "-b")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="stop after this many records")] = None,
) -> None:
    """Follow a topic and print each event as one readable line."""
    if topic not in TOPICS:
        raise typer.BadParameter(f"unknown topic {topic!r}; choose from {', '.join(TOPICS)}")
    from fraudstream.console import tail as follow

    settings = Settings()
    run_until_signal(lambda stop: follow(settings, topic, from_beginning, limit, stop=stop))


def lag() -> None:
    """How far behind each consumer group is, per topic and partition (from committed offsets)."""
    from fraudstream.lag import lag as print_lag

    asyncio.run(print_lag(Settings()))


def topics() -> None:
    """Create every topic with its partitions and retention (idempotent)."""
    from shared.kafka import ensure_topics

    settings = Settings()
    asyncio.run(ensure_topics(settings))
    for name, t in TOPICS.items():
        typer.echo(f"{settings.topic(name):<28} {t.event.__name__:<22} key={t.key}")


@models_app.command("list")
def models_list() -> None:
    """Every announcement on model.versions, oldest first; * marks the champion."""
    from services.model import registry

    history = asyncio.run(registry.history(Settings()))
    current = registry.champion(history)
    for e in history:
        mark = "*" if current is not None and e is current else " "
        ap = e.metrics.get("average_precision")
        typer.echo(f"{mark} {e.version:<8} {e.status:<10} {e.reason:<9} parent={e.parent or '-':<8} "
                   f"labels={e.training_window.labels_seen:<7} AP={'-' if ap is None else f'{ap:.3f}'} "
                   f"{e.published_at:%Y-%m-%d %H:%M:%S}")


@models_app.command()
def promote(version: str) -> None:
    """Make VERSION the champion (every scoring replica and the learner follow)."""
    from services.model.operations import NoSuchVersion
    from services.model.operations import promote as do_promote

    try:
        event = asyncio.run(do_promote(Settings(), version))
    except NoSuchVersion as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"promoted {event.version} (was {event.parent})")


@models_app.command()
def challenge(
    version: Annotated[str | None, typer.Argument(help="an existing version (e.g. a rejected retrain)")] = None,
    kind: Annotated[str | None, typer.Option(help="or a fresh model of this kind: linear, arf, amf")] = None,
) -> None:
    """Start a challenger that learns beside the champion and is shadow-scored on scores.shadow."""
    from services.model.operations import NoSuchVersion
    from services.model.operations import challenge as do_challenge

    if (version is None) == (kind is None):
        raise typer.BadParameter("give either a VERSION or --kind")
    try:
        event = asyncio.run(do_challenge(Settings(), version, kind))
    except (NoSuchVersion, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"challenger {event.version} learns beside {event.parent}; promote it with `fraudstream models promote`")


@models_app.command()
def rollback() -> None:
    """Make the previous champion the champion again."""
    from services.model.operations import NoSuchVersion
    from services.model.operations import rollback as do_rollback

    try:
        event = asyncio.run(do_rollback(Settings()))
    except NoSuchVersion as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"rolled back to {event.version} (was {event.parent})")


def retrain(
    reason: Annotated[str, typer.Option(help="why: recorded on the request and in the learner's log")],
    drift_event_id: Annotated[str | None, typer.Option(help="the drift event this answers, if any")] = None,
    since: Annotated[str | None, typer.Option(
        help="ISO 8601 event time the world changed (UTC if no offset): learn only labels of transactions "
             "from then on, in several passes, once enough are in")] = None,
    wait: Annotated[bool, typer.Option(help="wait for the verdict on model.versions and print it")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="with --wait: give up after this many seconds")] = 120.0,
) -> None:
    """Ask the learner for a challenger: trained on the recent labels, promoted only if it beats the champion."""
    from datetime import UTC, datetime

    from services.learner.service import request_retrain

    if not reason.strip():
        raise typer.BadParameter("give a reason")
    try:
        changed = None if since is None else datetime.fromisoformat(since)
    except ValueError as exc:
        raise typer.BadParameter(f"--since: not an ISO 8601 time: {since!r}") from exc
    if changed is not None and changed.tzinfo is None:
        changed = changed.replace(tzinfo=UTC)
    settings = Settings()
    if not wait:
        request = asyncio.run(request_retrain(settings, reason.strip(), "ops", drift_event_id, changed))
        queued = "" if changed is None else f" on labels since {request.since:%Y-%m-%d %H:%M:%S} UTC (queued until in)"
        typer.echo(f"retrain requested ({request.request_id}): {request.reason}{queued}; "
                   "watch model.versions for the verdict")
        return
    from fraudstream.console import line
    from fraudstream.verdict import NoVerdict, request_and_wait

    try:
        request, verdict = asyncio.run(request_and_wait(settings, reason.strip(), drift_event_id, changed, timeout))
    except NoVerdict as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"retrain {request.request_id}: {line(verdict)}")
    promoted = verdict.status == "champion"
    typer.echo(f"{'promoted' if promoted else 'rejected'}: {verdict.version} "
               + ("is the champion now" if promoted else f"did not beat {verdict.parent} by the margin "
                  f"(kept as rejected: `fraudstream models promote {verdict.version}` to use it anyway)"))
