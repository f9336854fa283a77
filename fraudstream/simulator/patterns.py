"""Labelled fraud patterns: each one a small generator of an episode, with its documented rate.

An episode starts at a moment of the traffic and returns drafts — ``(at_ms, card,
merchant, amount_eur, channel, device_id, is_fraud)`` — that may lie minutes or hours
ahead; the traffic loop schedules them. ``share`` is the pattern's part of all fraudulent
*transactions* (not episodes), before drift:

============================  =====  ==================================================
pattern                       share  looks like
============================  =====  ==================================================
card_testing                  30 %   3–8 tiny ecom payments at one digital-goods merchant
                                     within minutes, from a fraudster's device; 30 % end
                                     with one large cash-out purchase
tested_card                   15 %   card testing before a larger fraud: 2–6 tries of
                                     €0 (40 %: account verifications) to €1 at one
                                     digital-goods merchant within minutes, then, half
                                     a day to 4 days later, 1–2 ecom purchases at 2–5 ×
                                     the usual amount at a travel or electronics site
                                     from another fraudster's device
compromised_merchant          21 %   a regular customer's genuine visit to a breached store,
                                     then 1–3 card-not-present or cloned-card frauds hours
                                     later
stolen_card                   21 %   1–3 unusually large store or ATM payments within
                                     hours, 60 % of the time in another country
account_takeover              13 %   1–4 ecom payments at merchants the card never uses,
                                     from a new device, 2–5 × the usual amount
compromised_terminal          25 %   (long frauds; the five above then take 60 %) a
                                     skimmer: 15–40 cloned cards used at one store over
                                     2–4 weeks, at ordinary amounts
compromised_card              15 %   (long frauds) 3–8 payments over two weeks at the
                                     holder's usual places, 3–6 × the usual amount
quasi_cash (after drift)      40 %   1–2 large crypto purchases (MCC 6051) in a country
                                     never seen before (EE), from a new device
low_value (after drift,       40 %   one €3–30 ecom payment per stolen card number at an
opt-in)                              everyday online merchant, from a new device: under
                                     the PSD2 low-value exemption (no 3-D Secure) and
                                     under any velocity rule
============================  =====  ==================================================

The long frauds are in the mix when the stream is long enough to hold them
(``SimulatorConfig.long_frauds``, by default: a bounded stream of at least
:data:`LONG_FRAUDS_MIN_DAYS` days). Their label delay is the simulator's own (a
chargeback's, ``label_delay_mean``); a replay or ``evaluate`` sets its own.

A drift pattern (``SimulatorConfig.drift_pattern``) takes its share of the frauds after
drift; the others keep their mix in the rest.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import accumulate
from random import Random

from fraudstream.simulator.population import World

Draft = tuple[int, int, int, float, str, str | None, bool]
MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Pattern:
    name: str
    share: float
    fraud_tx_per_episode: float
    """Expected number, used to turn the fraud rate into a rate of episodes."""
    genuine_tx_per_episode: int
    episode: Callable[[World, Random, int], list[Draft]]


def _gap(rng: Random, mean_minutes: float, min_seconds: float = 2.0) -> int:
    return int(1000 * min_seconds + rng.expovariate(1.0 / (mean_minutes * MINUTE_MS)))


def card_testing(world: World, rng: Random, t: int) -> list[Draft]:
    card, merchant, device = world.random_card(rng), rng.choice(world.testing), rng.choice(world.fraudster_devices)
    drafts: list[Draft] = []
    for _ in range(rng.randint(3, 8)):
        drafts.append((t, card, merchant, round(rng.uniform(0.5, 5.0), 2), "ecom", device, True))
        t += _gap(rng, 0.7)
    if rng.random() < 0.3:
        cash_out = rng.choice(world.high_value["online"])
        drafts.append((t + _gap(rng, 20), card, cash_out, rng.uniform(150, 900), "ecom", device, True))
    return drafts


def tested_card(world: World, rng: Random, t: int) -> list[Draft]:
    """Card testing before a larger fraud: a stolen number is tried with nothing or next to
    nothing (a €0 account verification, a few cents) at a digital-goods merchant within
    minutes; once it works it is sold on as verified, and half a day to four days later
    the buyer spends on it, at a travel or electronics site, from another device."""
    card, tester = world.random_card(rng), rng.choice(world.fraudster_devices)
    buyer = rng.choice([d for d in world.fraudster_devices if d != tester])
    merchant = rng.choice(world.testing)
    drafts: list[Draft] = []
    for _ in range(rng.randint(2, 6)):
        amount = 0.0 if rng.random() < 0.4 else round(rng.uniform(0.01, 1.0), 2)
        drafts.append((t, card, merchant, amount, "ecom", tester, True))
        t += _gap(rng, 1.0)
    t += int(rng.uniform(0.5, 4.0) * DAY_MS)
    for _ in range(rng.randint(1, 2)):
        shop = rng.choice(world.high_value["online"])
        amount = world.usual_amount(rng, world.cards[card], shop) * rng.uniform(2.0, 5.0)
        drafts.append((t, card, shop, amount, "ecom", buyer, True))
        t += _gap(rng, 30)
    return drafts


def compromised_merchant(world: World, rng: Random, t: int) -> list[Draft]:
    breached = rng.choice(list(world.breached))
    customers = world.breached[breached]
    card = rng.choice(customers) if customers else world.random_card(rng)
    genuine_visit = (t, card, breached, world.usual_amount(rng, world.cards[card], breached), "pos", None, False)
    drafts: list[Draft] = [genuine_visit]
    t += int(30 * MINUTE_MS + rng.lognormvariate(0.0, 0.8) * 8 * 60 * MINUTE_MS)  # the data is sold first
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.7:
            merchant, channel, device = rng.choice(world.by_kind["online"]), "ecom", rng.choice(world.fraudster_devices)
        else:  # a cloned magstripe, used abroad
            merchant, channel, device = world.somewhere_else(rng, "store", world.cards[card].home), "pos", None
        amount = world.usual_amount(rng, world.cards[card], merchant) * rng.uniform(1.5, 4.0)
        drafts.append((t, card, merchant, amount, channel, device, True))
        t += _gap(rng, 120)
    return drafts


def stolen_card(world: World, rng: Random, t: int) -> list[Draft]:
    card = world.random_card(rng)
    home, abroad = world.cards[card].home, rng.random() < 0.6
    drafts: list[Draft] = []
    for _ in range(rng.randint(1, 3)):
        kind = "atm" if rng.random() < 0.35 else "store"
        pool = world.high_value[kind]
        merchant = world.somewhere_else(rng, kind, home, pool) if abroad else rng.choice(
            [m for m in pool if world.merchants[m].country == home] or pool)
        if kind == "atm":
            amount, channel = 20.0 * rng.randint(10, 30), "atm"
        else:
            amount, channel = world.usual_amount(rng, world.cards[card], merchant) * rng.uniform(2.0, 6.0), "pos"
        drafts.append((t, card, merchant, amount, channel, None, True))
        t += _gap(rng, 40)
    return drafts


def account_takeover(world: World, rng: Random, t: int) -> list[Draft]:
    card = world.random_card(rng)
    usual = set(world.cards[card].favourites["online"])
    device = world.new_device(rng)
    drafts: list[Draft] = []
    for _ in range(rng.randint(1, 4)):
        merchant = rng.choice(world.by_kind["online"])
        for _ in range(4):
            if merchant not in usual:
                break
            merchant = rng.choice(world.by_kind["online"])
        amount = world.usual_amount(rng, world.cards[card], merchant) * rng.uniform(2.0, 5.0)
        drafts.append((t, card, merchant, amount, "ecom", device, True))
        t += _gap(rng, 15)
    return drafts


def compromised_terminal(world: World, rng: Random, t: int) -> list[Draft]:
    """A skimmer in a store: for two to four weeks, cloned cards are used at that very
    terminal, at ordinary amounts. Only the store's fraud history gives it away, and that
    history arrives with the label delay."""
    store = rng.choice(world.by_kind["store"])
    span_ms = int(rng.uniform(14, 28) * DAY_MS)
    drafts: list[Draft] = []
    for at in sorted(t + int(rng.random() * span_ms) for _ in range(rng.randint(15, 40))):
        card = world.random_card(rng)
        drafts.append((at, card, store, world.usual_amount(rng, world.cards[card], store) * rng.uniform(1.0, 1.5),
                       "pos", None, True))
    return drafts


def compromised_card(world: World, rng: Random, t: int) -> list[Draft]:
    """Card details sold on: for two weeks the buyer uses them now and then at the kind of
    places the holder goes to, at several times the holder's usual amount."""
    card = world.random_card(rng)
    holder = world.cards[card]
    drafts: list[Draft] = []
    for at in sorted(t + int(rng.random() * 14 * DAY_MS) for _ in range(rng.randint(3, 8))):
        online = rng.random() < 0.5
        merchant = rng.choice(holder.favourites["online" if online else "store"])
        amount = world.usual_amount(rng, holder, merchant) * rng.uniform(3.0, 6.0)
        drafts.append((at, card, merchant, amount, "ecom" if online else "pos",
                       world.new_device(rng) if online else None, True))
    return drafts


def quasi_cash(world: World, rng: Random, t: int) -> list[Draft]:
    card, device = world.random_card(rng), world.new_device(rng)
    drafts: list[Draft] = []
    for _ in range(rng.randint(1, 2)):
        drafts.append((t, card, rng.choice(world.quasi_cash), rng.uniform(400, 2500), "ecom", device, True))
        t += _gap(rng, 10)
    return drafts


def low_value(world: World, rng: Random, t: int) -> list[Draft]:
    card, device = world.random_card(rng), world.new_device(rng)
    merchant = rng.choice(world.everyday_online)
    return [(t, card, merchant, round(rng.uniform(3.0, 30.0), 2), "ecom", device, True)]


# the expected counts follow the generators: randint(3, 8) has a mean of 5.5, and so on
PATTERNS = (
    Pattern("card_testing", 0.30, 5.5 + 0.3, 0, card_testing),
    Pattern("tested_card", 0.15, 4.0 + 1.5, 0, tested_card),
    Pattern("compromised_merchant", 0.21, 2.0, 1, compromised_merchant),
    Pattern("stolen_card", 0.21, 2.0, 0, stolen_card),
    Pattern("account_takeover", 0.13, 2.5, 0, account_takeover),
)
LONG_PATTERNS = (
    Pattern("compromised_terminal", 0.25, 27.5, 0, compromised_terminal),
    Pattern("compromised_card", 0.15, 5.5, 0, compromised_card),
)
"""Frauds that go on for weeks (``SimulatorConfig.long_frauds``): they take 40 % of the
frauds and the others keep their mix. Their episodes start at the configured rate, so the
fraud rate is met once the first month has filled up, not in the first days."""
LONG_FRAUDS_MIN_DAYS = 28.0
"""A bounded stream at least this long (in event time, at the population's mean rate) has
the long frauds by default: the longest episode lasts up to four weeks. In a shorter one
an episode is cut off after a few of its frauds (a handful of isolated, ordinary-looking
payments at a store, which nothing can learn) and the fraud rate stays under the one
configured, so they are left out unless asked for."""


def with_long_patterns(patterns: tuple[Pattern, ...]) -> tuple[Pattern, ...]:
    """``patterns`` scaled to 60 % of the frauds, plus :data:`LONG_PATTERNS`."""
    return (*(replace(p, share=p.share * 0.6) for p in patterns), *LONG_PATTERNS)
DRIFT_PATTERN = Pattern("quasi_cash", 0.40, 1.5, 0, quasi_cash)
DRIFT_PATTERNS = {p.name: p for p in (DRIFT_PATTERN, Pattern("low_value", 0.40, 1.0, 0, low_value))}
"""The patterns that appear only after drift, by name."""


class FraudMix:
    """Which episode, if any, a moment of traffic starts, so that ``fraud_rate`` of all
    transactions are fraud and each pattern gets its ``share`` of them.

    An episode of pattern P replaces one genuine payment with L_P frauds and g_P genuine
    payments. Per moment, with q_P the chance of starting P and Q = Σ q_P L_P the frauds
    it brings, the fraud rate is f = Q / (1 + Q − Q·h) where h = Σ s_P (1 − g_P) / L_P;
    solved for Q this gives Q = f / (1 − f + f·h).

    >>> mix = FraudMix(0.01, PATTERNS)
    >>> round(mix.fraud_tx_per_moment / mix.tx_per_moment, 6)
    0.01
    >>> mix.pick(0.999) is None, mix.pick(0.0).name
    (True, 'card_testing')
    """

    def __init__(self, fraud_rate: float, patterns: tuple[Pattern, ...]):
        total = sum(p.share for p in patterns)
        shares = [p.share / total for p in patterns]
        lengths = [p.fraud_tx_per_episode for p in patterns]
        h = sum(s * (1 - p.genuine_tx_per_episode) / n for s, p, n in zip(shares, patterns, lengths, strict=True))
        fraud = fraud_rate / (1 - fraud_rate + fraud_rate * h)
        odds = [s * fraud / n for s, n in zip(shares, lengths, strict=True)]
        self.patterns = patterns
        self.cum_odds = list(accumulate(odds))
        self.fraud_tx_per_moment = fraud
        self.tx_per_moment = 1 + sum(q * (n + p.genuine_tx_per_episode - 1)
                                     for q, p, n in zip(odds, patterns, lengths, strict=True))

    def pick(self, u: float) -> Pattern | None:
        """The pattern a uniform draw ``u`` in [0, 1) starts, or None for a genuine payment."""
        i = bisect_right(self.cum_odds, u)
        return self.patterns[i] if i < len(self.patterns) else None


def with_drift_pattern(share: float, name: str = DRIFT_PATTERN.name,
                       patterns: tuple[Pattern, ...] = PATTERNS) -> tuple[Pattern, ...]:
    """The patterns after drift: the new one takes ``share`` of the frauds, the rest keep their mix."""
    return (*(replace(p, share=p.share * (1 - share)) for p in patterns), replace(DRIFT_PATTERNS[name], share=share))
