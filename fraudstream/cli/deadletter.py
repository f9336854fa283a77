"""``fraudstream deadletter list|redrive``: what was refused and why, and sending it back."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Annotated

import orjson
import typer

from fraudstream import deadletters
from fraudstream.console import line
from shared.settings import Settings

app = typer.Typer(help="Read the dead letters and redrive chosen ones to where they came from.",
                  no_args_is_help=True)

Reason = Annotated[list[str] | None, typer.Option(
    "--reason", "-r", help="only letters of this reason, e.g. 'malformed', 'out of range' (repeatable)")]
Topic = Annotated[str | None, typer.Option(help="only letters refused from this topic, e.g. transactions.raw")]


@app.command("list")
def list_(
    reason: Reason = None,
    topic: Topic = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per letter (payload base64)")] = False,
) -> None:
    """Every dead letter now on the topic, oldest first per partition, with its ID (PARTITION:OFFSET);
    a count by reason follows on stderr."""
    settings = Settings()
    letters, unreadable = asyncio.run(deadletters.read_all(settings))
    chosen = deadletters.select(letters, reason or [], topic=topic, settings=settings)
    for letter in chosen:
        if as_json:
            typer.echo(orjson.dumps({"id": letter.id, "reason": letter.reason}
                                    | letter.event.model_dump(mode="json")).decode())
        else:
            typer.echo(f"{letter.id:<8} {line(letter.event)}")
    counts = Counter(letter.reason for letter in chosen)
    summary = ", ".join(f"{n} {r}" for r, n in sorted(counts.items(), key=lambda rn: (-rn[1], rn[0]))) or "none"
    typer.echo(f"{len(chosen)} dead letters ({summary})"
               + (f"; {unreadable} records unreadable" if unreadable else ""), err=True)


@app.command()
def redrive(
    reason: Reason = None,
    offset: Annotated[list[str] | None, typer.Option(
        "--offset", "-o",
        help="a letter's ID, PARTITION:OFFSET on the deadletter topic, as `list` shows (repeatable)")] = None,
    topic: Topic = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would be redriven")] = False,
) -> None:
    """Re-publish chosen dead letters' original bytes to the topic they were refused from
    (after fixing what refused them). Choose by --reason, --offset and/or --topic."""
    if not (reason or offset or topic):
        raise typer.BadParameter("choose the letters: --reason, --offset and/or --topic "
                                 "(see `fraudstream deadletter list`)")
    for given in offset or []:
        if given.count(":") != 1 or not all(part.isdigit() for part in given.split(":")):
            raise typer.BadParameter(f"--offset {given!r}: give PARTITION:OFFSET, e.g. 0:17")
    settings = Settings()
    letters, _ = asyncio.run(deadletters.read_all(settings))
    chosen = deadletters.select(letters, reason or [], offset or [], topic, settings)
    missing = sorted(set(offset or []) - {letter.id for letter in letters})
    if missing:  # a typo must not redrive the rest of a selection
        typer.echo(f"no dead letter at {', '.join(missing)}; nothing redriven", err=True)
        raise typer.Exit(1)
    if not chosen:
        typer.echo("no dead letters match; nothing redriven", err=True)
        raise typer.Exit(1)
    for letter in chosen:
        typer.echo(f"{'would redrive' if dry_run else 'redrive'} {letter.id} -> {letter.event.topic}"
                   f" ({letter.reason})")
    if not dry_run:
        try:
            sent = asyncio.run(deadletters.redrive(settings, chosen))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        typer.echo(f"redrove {sent} dead letters", err=True)
