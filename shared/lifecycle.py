"""Process lifecycle every entry point shares: logging set-up and stopping on a signal.

With ``FRAUDSTREAM_LOG_FORMAT=json`` each log record is one JSON object on one line, so a
log shipper needs no multi-line parsing (a traceback goes into the ``exc`` field):

>>> record = logging.LogRecord("services.ingest", logging.WARNING, __file__, 1, "refused %d", (3,), None)
>>> record.created = 0.0
>>> JsonFormatter().format(record)
'{"ts":"1970-01-01T00:00:00.000Z","level":"WARNING","logger":"services.ingest","message":"refused 3"}'
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson

from shared.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ms), level, logger, message, and exc when raised."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry).decode()


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """True once ``event`` is set, False after ``timeout_s``; a cancellation always propagates.

    Not ``asyncio.wait_for``: on Python 3.11 it returns normally when the task is cancelled
    in the same loop step as the event is set, and the cancellation is lost. A replay sent
    SIGTERM (a cancelled main task) then ran to its end and exited 0 (CI, 2026-12-05).
    """
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
        return True
    except TimeoutError:
        return False


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    # aiokafka's INFO is one line per rebalance step: kept only when debugging
    logging.getLogger("aiokafka").setLevel(logging.INFO if settings.log_level.upper() == "DEBUG" else logging.WARNING)


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[object]]) -> None:
    """Run ``main(stop)`` and set ``stop`` on SIGINT/SIGTERM, so services drain and commit."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())
