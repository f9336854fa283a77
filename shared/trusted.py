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
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaValidator, core_schema

from shared.codec import decode
from shared.errors import DecodeError
from shared.events import Event

E = TypeVar("E", bound=Event)
V = TypeVar("V", bound="View")

KNOWN_SCHEMA_VERSIONS = frozenset({1})
_PYTHON_FUNCTIONS = frozenset({"function-before", "function-after", "function-wrap"})
_STRICT = frozenset({"str", "int", "float", "bool", "dict", "list", "literal"})
_ISO_DATE = r"^\d{4}-\d\d-\d\dT"


def trusting_decoder(event_type: type[E]) -> Callable[[bytes | None], E]:
    """Decode an event a service wrote; raise :class:`DecodeError` with the reason if it is not one."""
    shape = SchemaValidator(_without_functions(event_type.__pydantic_core_schema__))
    return _by_shape(shape, event_type, lambda event: event)


class View:
    """What one consumer reads of an event: subclass it and annotate the fields read, with the
    event's own names; a nested model read in part is a ``View`` of that model, one read
    whole keeps the model's type. ``schema_version`` is always read.

    A view decoder (:func:`view_decoder`) checks the fields read exactly as
    :func:`trusting_decoder` does and returns an instance with them as attributes (built in
    Rust, no Python call per event). Every other field of the event is *skimmed*: present
    if the event requires it, of its JSON kind (an object, a list, a string, a number…).
    An object's members are not read nor turned into Python objects (an empty dict comes
    out; a list of objects, a list of empty dicts); a scalar comes out as itself. Those
    skimmed values are on the instance too, but not part of its type: read only what the
    view annotates. Unknown fields are still refused, so another topic's event is refused
    as before, and so is a truncated record (the whole JSON is parsed). What a view does
    not refuse: a value malformed inside a field it does not read, or a time it does not
    read in another form than ours. That record is still dead-lettered by the consumers
    that read the field (scoring reads every feature).
    """

    schema_version: int


def view_decoder(event_type: type[Event], view: type[V]) -> Callable[[bytes | None], V]:
    """Decode what ``view`` reads of an ``event_type`` a service wrote; raise
    :class:`DecodeError` with the full rules' reason if it is not one (as :func:`trusting_decoder`).

    >>> from shared.codec import encode
    >>> from shared.events import Reason, Score
    >>> class ScoreSeen(View):
    ...     tx_id: str
    ...     score: float
    >>> score = Score(tx_id="t1", card_id="c1", ts="2026-01-01T00:00:00Z", score=0.25, decision="approve",
    ...               model_version="v1", reasons=[Reason(feature="amount", value=1.0, contribution=0.1, text="")])
    >>> seen = view_decoder(Score, ScoreSeen)(encode(score))
    >>> type(seen).__name__, seen.tx_id, seen.score, seen.schema_version
    ('ScoreSeen', 't1', 0.25, 1)
    >>> view_decoder(Score, ScoreSeen)(encode(score).replace(b'"decision"', b'"verdict"'))
    Traceback (most recent call last):
    ...
    shared.errors.DecodeError: not a valid Score: decision: Field required; verdict: Extra inputs are not permitted
    """
    schema = event_type.__pydantic_core_schema__
    if schema.get("type") != "model":  # DriftDetected's shared Window comes as definitions
        raise TypeError(f"views read events whose core schema is one model, not {schema.get('type')}")
    shape = SchemaValidator(_view_schema(schema, view))
    return _by_shape(shape, event_type, lambda event: _read(event, view))


T = TypeVar("T")


def _by_shape(shape: SchemaValidator, event_type: type[E], from_full: Callable[[E], T]) -> Callable[[bytes | None], T]:
    """``shape`` on the bytes; what it refuses goes through the full rules (then ``from_full``)."""
    name = event_type.__name__

    def decode_by_shape(raw: bytes | None) -> T:
        if raw:
            try:
                read = shape.validate_json(raw)
            except ValidationError:
                read = None  # the full rules below say why (or accept it)
            if read is not None and read.schema_version in KNOWN_SCHEMA_VERSIONS:
                return read
        event = decode(raw, event_type)
        if event.schema_version not in KNOWN_SCHEMA_VERSIONS:
            raise DecodeError(f"not a valid {name}: unknown schema_version {event.schema_version}")
        return from_full(event)

    return decode_by_shape


def _view_schema(model_schema: Any, view: type[View]) -> Any:
    """The model schema of ``view``: the event's fields read by their shape, the others skimmed."""
    hints = get_type_hints(view)
    fields = model_schema["schema"]["fields"]
    unknown = hints.keys() - fields.keys()
    if unknown:
        raise TypeError(f"{view.__name__} reads fields {model_schema['cls'].__name__} does not have: {sorted(unknown)}")
    read = {}
    for name, field in fields.items():
        hint = hints.get(name)
        if hint is None:
            schema = _skimmed(_without_functions(field["schema"]))
        elif isinstance(hint, type) and issubclass(hint, View):
            schema = _nested(field["schema"], hint)
        else:
            schema = _without_functions(field["schema"])
        read[name] = core_schema.model_field(schema)
    extra = model_schema.get("config", {}).get("extra_fields_behavior", "forbid")
    return core_schema.model_schema(view, core_schema.model_fields_schema(read, extra_behavior=extra))


def _nested(schema: Any, view: type[View]) -> Any:
    """A nested model read in part, inside its default or nullable wrappers."""
    if schema.get("type") == "model":
        return _view_schema(schema, view)
    if schema.get("type") in ("default", "nullable"):
        return {**schema, "schema": _nested(schema["schema"], view)}
    raise TypeError(f"{view.__name__} views a field that is not a model: {schema.get('type')}")


_OBJECT = core_schema.typed_dict_schema({}, extra_behavior="ignore")
"""Any JSON object, none of its members read: an empty dict comes out."""


def _skimmed(shape: Any) -> Any:
    """A field not read: its JSON kind only (present when required, a default when absent)."""
    kind = shape.get("type")
    if kind in ("default", "nullable"):
        return {**shape, "schema": _skimmed(shape["schema"])}
    if kind == "list":
        return core_schema.list_schema(_skimmed(shape["items_schema"]), strict=True)
    if kind in ("dict", "function-after"):  # function-after: a model, built by _builder
        return _OBJECT
    if kind == "chain":  # a time: ISO 8601 text
        return core_schema.str_schema(strict=True)
    if kind in ("str", "int", "float", "bool"):
        return {"type": kind, "strict": True}
    return shape  # literals, and anything rarer: checked in full


def _read(event: BaseModel, view: type[V]) -> V:
    """The view of an event the full rules decoded (an offset other than UTC, say)."""
    read = view.__new__(view)
    for name, hint in get_type_hints(view).items():
        value = getattr(event, name)
        if isinstance(hint, type) and issubclass(hint, View) and isinstance(value, BaseModel):
            value = _read(value, hint)
        setattr(read, name, value)
    return read


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
