"""The cheap decode of events a service wrote: the shape checked in Rust, not every rule again.

Ingest validates producers' bytes in full, once; every later hop reads events that a
service of ours encoded. Running all of pydantic's Python validators again on each hop
(ISO 8601 only, UTC, ISO 4217, finite features) cost more than several hops' work. What a
hop must still refuse is a record that is not what its topic carries: truncated or
foreign bytes, another topic's event, a schema version we do not know. So each event type
gets a second validator compiled from its own core schema with the Python functions taken
out, strict, straight on the bytes: every field present with its JSON type,
no unknown field, literals among their values, lengths and patterns, nested models alike,
times ISO 8601 strings in UTC (what our encoder writes), no NaN or infinity. What it
refuses goes through the full rules (:func:`shared.codec.decode`): they accept what only
they know how to read (an offset other than UTC, say) or give the same reason as before.

>>> from shared.codec import encode
>>> from shared.events import Label, Transaction
>>> label = Label(tx_id="t1", card_id="c1", is_fraud=True, labelled_at="2026-01-01T00:00:00+01:00")
>>> decode_label = trusting_decoder(Label)
>>> decode_label(encode(label)) == label
True
>>> decode_label(encode(label)[:-3])
Traceback (most recent call last):
...
shared.errors.DecodeError: not JSON: unexpected end of data: line 1 column 121 (char 120)
>>> decode_label(b'{"tx_id":"t1","card_id":"c1","is_fraud":true,'
...              b'"labelled_at":"2026-01-01T00:00:00Z","schema_version":2}')
Traceback (most recent call last):
...
shared.errors.DecodeError: not a valid Label: unknown schema_version 2
>>> trusting_decoder(Transaction)(encode(label))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
shared.errors.DecodeError: not a valid Transaction: ts: Field required; merchant_id: Field required; ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaValidator, core_schema

from shared.codec import decode
from shared.errors import DecodeError

E = TypeVar("E", bound=BaseModel)

KNOWN_SCHEMA_VERSIONS = frozenset({1})
_PYTHON_FUNCTIONS = frozenset({"function-before", "function-after", "function-wrap"})
_STRICT = frozenset({"str", "int", "float", "bool", "dict", "list", "literal"})
_ISO_DATE = r"^\d{4}-\d\d-\d\dT"


def trusting_decoder(event_type: type[E]) -> Callable[[bytes | None], E]:
    """Decode an event a service wrote; raise :class:`DecodeError` with the reason if it is not one."""
    shape = SchemaValidator(_without_functions(event_type.__pydantic_core_schema__))
    name = event_type.__name__

    def decode_internal(raw: bytes | None) -> E:
        if raw:
            try:
                event = shape.validate_json(raw)
            except ValidationError:
                event = None  # the full rules below say why (or accept it)
            if event is not None and event.schema_version in KNOWN_SCHEMA_VERSIONS:
                return event
        event = decode(raw, event_type)
        if event.schema_version not in KNOWN_SCHEMA_VERSIONS:
            raise DecodeError(f"not a valid {name}: unknown schema_version {event.schema_version}")
        return event

    return decode_internal


def _without_functions(schema: Any) -> Any:
    """A copy of a pydantic core schema with its Python validators taken out, times held to
    UTC and numbers to finite ones (what our encoder writes; JSON has no NaN)."""
    if isinstance(schema, list):
        return [_without_functions(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") in _PYTHON_FUNCTIONS:
        return _without_functions(schema["schema"])
    copy = {key: _without_functions(value) for key, value in schema.items()}
    if copy.get("type") == "model":
        # pydantic-core reuses a complete model's own validator (the functions again) for
        # any "model" schema of its class; its fields' schema, validated here, is ours. Then
        # one Python call per model builds it as ``model_construct`` would.
        fields = copy["schema"] | {"extra_behavior": copy.get("config", {}).get("extra_fields_behavior", "forbid")}
        return core_schema.no_info_after_validator_function(_builder(copy["cls"]), fields)
    kind = copy.get("type")
    if kind == "datetime":
        # Strict JSON would still read "1700000000" as an epoch time: an ISO 8601 date first.
        return core_schema.chain_schema([core_schema.str_schema(pattern=_ISO_DATE, strict=True),
                                         core_schema.datetime_schema(tz_constraint=0, strict=False)])
    if kind in _STRICT:
        copy.setdefault("strict", True)  # per schema: a strict call would refuse the chain above
    if kind == "float":
        copy["allow_inf_nan"] = False
    return copy


def _builder(model: type[BaseModel]) -> Callable[[tuple], BaseModel]:
    new, set_attribute = model.__new__, object.__setattr__

    def build(validated: tuple) -> BaseModel:
        fields, _extra, fields_set = validated  # extra fields are forbidden: always None
        event = new(model)
        set_attribute(event, "__dict__", fields)
        set_attribute(event, "__pydantic_fields_set__", fields_set)
        set_attribute(event, "__pydantic_extra__", None)
        set_attribute(event, "__pydantic_private__", None)
        return event

    return build
