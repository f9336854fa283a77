"""The validator never crashes: any bytes give either a valid event or a reason."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.validate import Limits, Rejected, parse_label, parse_transaction
from shared.events import Label, Transaction

LIMITS = Limits(max_bytes=4096, max_amount=1_000_000, max_future_skew_s=300, max_age_days=400)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["tx_id", "ts", "card_id", "merchant_id", "amount", "currency", "channel", "mcc", "country",
          "is_fraud", "labelled_at", "source", "device_id", "lat", "lon"]
plausible = st.fixed_dictionaries(
    {},
    optional={
        "tx_id": st.text(max_size=70), "card_id": st.text(max_size=5), "merchant_id": st.just("m"),
        "ts": st.datetimes(timezones=st.just(UTC) | st.none()).map(lambda d: d.isoformat()) | json_values,
        "labelled_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
        "amount": st.floats() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
        "currency": st.sampled_from(["EUR", "eur", "XXQ", ""]),
        "channel": st.sampled_from(["pos", "web"]), "mcc": st.sampled_from(["5411", "54a1"]),
        "country": st.sampled_from(["FR", "fra"]), "is_fraud": json_values, "lat": json_values,
    },
)


def outcome(parse, raw: bytes):
    try:
        return parse(raw, LIMITS, NOW)
    except Rejected as exc:
        assert str(exc).split(":", 1)[0] in {"malformed", "oversized", "out of range"}, str(exc)
        return exc


@pytest.mark.parametrize("parse,kind", [(parse_transaction, Transaction), (parse_label, Label)])
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200) | json_values.map(orjson.dumps) | plausible.map(orjson.dumps))
def test_any_bytes_give_an_event_or_a_reason(parse, kind, data):
    result = outcome(parse, data)
    assert isinstance(result, (kind, Rejected))


def test_a_valid_transaction_is_normalised():
    raw = (b'{"tx_id":" t-1 ","ts":"2026-06-01T13:00:00+02:00","card_id":"c","merchant_id":"m","amount":5,'
           b'"currency":"gbp","channel":"ecom","mcc":"5999","country":"gb"}')
    tx = parse_transaction(raw, LIMITS, NOW)
    assert (tx.tx_id, tx.ts, tx.amount, tx.currency, tx.country) == (
        "t-1", datetime(2026, 6, 1, 11, tzinfo=UTC), 5.0, "GBP", "GB")


@pytest.mark.parametrize(
    "raw,reason",
    [
        (None, "malformed: empty message (no value)"),
        (b"", "malformed: empty message (zero bytes)"),
        (b"\xc3\x28", "malformed: not UTF-8: invalid continuation byte at byte 0"),
        (b'"a string"', "malformed: not a JSON object (got str)"),
        (b"x" * 5000, "oversized: 5000 bytes is above the limit of 4096"),
        (b'{"tx_id":"t","card_id":"c","is_fraud":true,"labelled_at":"2027-01-01T00:00:00Z"}',
         "out of range: labelled_at 2027-01-01T00:00:00+00:00 is in the future (now 2026-06-01T12:00:00+00:00)"),
    ],
)
def test_reasons_are_exact(raw, reason):
    with pytest.raises(Rejected) as caught:
        parse_label(raw, LIMITS, NOW)
    assert str(caught.value) == reason


TX = ('{"tx_id":"t","ts":%s,"card_id":"c","merchant_id":"m","amount":%s,"currency":"EUR","channel":"pos",'
      '"mcc":"5411","country":"FR"}')


@pytest.mark.parametrize(
    "ts,reason",
    [
        ("1780315200", "ts: Value error, must be an ISO 8601 date-time string, got int"),
        ("1780315200000", "ts: Value error, must be an ISO 8601 date-time string, got int"),
        ("1780315200.5", "ts: Value error, must be an ISO 8601 date-time string, got float"),
        ('"1780315200"', "ts: Value error, not an ISO 8601 date-time: '1780315200'"),
        ('"2026-06-01T12:00:00"', "ts: Input should have timezone info"),
    ],
)
def test_timestamps_are_never_coerced_from_numbers(ts, reason):
    with pytest.raises(Rejected) as caught:
        parse_transaction((TX % (ts, "5")).encode(), LIMITS, NOW)
    assert str(caught.value) == f"malformed: not a valid Transaction: {reason}"
    label = '{"tx_id":"t","card_id":"c","is_fraud":true,"labelled_at":' + ts + "}"
    with pytest.raises(Rejected) as caught:
        parse_label(label.encode(), LIMITS, NOW)
    assert str(caught.value) == f"malformed: not a valid Label: {reason.replace('ts:', 'labelled_at:')}"


def test_zero_amounts_are_scored_and_negative_ones_refused():
    assert parse_transaction((TX % ('"2026-06-01T12:00:00Z"', "0")).encode(), LIMITS, NOW).amount == 0.0
    with pytest.raises(Rejected) as caught:
        parse_transaction((TX % ('"2026-06-01T12:00:00Z"', "-0.01")).encode(), LIMITS, NOW)
    assert str(caught.value) == "malformed: not a valid Transaction: amount: Input should be greater than or equal to 0"
