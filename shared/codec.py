"""The one module that knows the wire format: JSON via orjson, pydantic models on both ends.

Library errors stop here and become :class:`DecodeError`, whose message is the reason a
dead letter carries.

>>> from shared.events import RetrainRequested
>>> raw = encode(RetrainRequested(request_id="r1", reason="drift", requested_at="2026-01-01T00:00:00Z"))
>>> decode(raw, RetrainRequested).reason
'drift'
>>> decode(b"[1]", RetrainRequested)
Traceback (most recent call last):
...
shared.errors.DecodeError: not a JSON object (got list)
>>> decode(None, RetrainRequested)
Traceback (most recent call last):
...
shared.errors.DecodeError: empty message (no value)
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from shared.errors import DecodeError

__all__ = ["DecodeError", "decode", "encode", "explain", "loads", "validate"]

E = TypeVar("E", bound=BaseModel)


def encode(event: BaseModel) -> bytes:
    return event.__pydantic_serializer__.to_json(event)


def loads(raw: bytes | None) -> dict[str, Any]:
    """Parse bytes into a JSON object, or say exactly why not."""
    if not raw:  # a tombstone (None) or zero bytes: nothing to parse, and a clear reason
        raise DecodeError("empty message (no value)" if raw is None else "empty message (zero bytes)")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise DecodeError(f"not UTF-8: {bad.reason} at byte {bad.start}") from exc
        raise DecodeError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise DecodeError(f"not a JSON object (got {type(obj).__name__})")
    return obj


def validate(obj: dict[str, Any], event_type: type[E]) -> E:
    try:
        return event_type.model_validate(obj)
    except ValidationError as exc:
        raise DecodeError(f"not a valid {event_type.__name__}: {explain(exc)}") from exc


def decode(raw: bytes | None, event_type: type[E]) -> E:
    return validate(loads(raw), event_type)


def explain(exc: ValidationError, limit: int = 5) -> str:
    """Pydantic's errors as one short line: ``field: message; field: message``."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
