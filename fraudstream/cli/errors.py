"""Everyday mistakes as one line that says the fix, instead of a page of traceback.

>>> from pydantic import ValidationError
>>> from shared.settings import Settings
>>> try:
...     Settings(partitions="abc")
... except ValidationError as exc:
...     print(explain(exc))
FRAUDSTREAM_PARTITIONS='abc': Input should be a valid integer, unable to parse string as an integer; fix it or unset it
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.kafka import TopicsMissing
from shared.settings import Settings

PREFIX = Settings.model_config["env_prefix"]


def _setting(name: str) -> str:
    return os.environ.get(f"{PREFIX}{name.upper()}", str(Settings.model_fields[name].default))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it was raised from or during, and the members of exception groups."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        todo.extend(c for c in (e.__cause__, e.__context__) if c is not None)


def _settings_error(exc: ValidationError) -> str:
    return "; ".join(
        f"{PREFIX}{'_'.join(map(str, err['loc'])).upper()}={err['input']!r}: {err['msg']}"
        for err in exc.errors()
    ) + "; fix it or unset it"


def explain(exc: BaseException) -> str | None:
    """One line for a mistake people make every day, or None for a real bug (traceback stays)."""
    for e in _causes(exc):
        if isinstance(e, ValidationError) and e.title == Settings.__name__:
            return _settings_error(e)
        if isinstance(e, KafkaConnectionError):
            return (f"no Kafka broker answers at {_setting('kafka_bootstrap')} ({PREFIX}KAFKA_BOOTSTRAP); "
                    "start one with `fraudstream stack` and export what it prints, or point "
                    f"{PREFIX}KAFKA_BOOTSTRAP at yours")
        if isinstance(e, RedisConnectionError):
            return (f"no Redis answers at {_setting('redis_url')} ({PREFIX}REDIS_URL): {str(e).rstrip('.')}; "
                    f"start redis-server (or `fraudstream stack`) or point {PREFIX}REDIS_URL at yours")
        if isinstance(e, TopicsMissing):
            return f"{e}; create them with `fraudstream topics` (or check {PREFIX}TOPIC_PREFIX)"
    return None


class _Noise(logging.Filter):
    """Drops the client chatter that the one-line error already explains."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.startswith('Unable connect to "') or message.startswith("Unclosed AIOKafka"))


def quiet_client_noise() -> None:
    """aiokafka logs a failed bootstrap before raising it, and its clients complain when
    collected unclosed after one; the raised error is what the user needs to read."""
    for name in ("aiokafka", "asyncio"):
        logging.getLogger(name).addFilter(_Noise())
