"""The simulated population: cardholders with habits, merchants with a trade, genuine spending.

Amounts are drawn in euros and converted at a fixed rate into the merchant's currency, so
one habit means the same thing in Paris, London and New York.

>>> world = build_world(Random(1), seed=1, n_cards=50, n_merchants=40)
>>> len(world.cards), world.cards[0].id, world.merchants[0].id
(50, 'card-1-0', 'm-1-0')
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from random import Random

HOME_COUNTRIES = {"FR": 0.24, "DE": 0.22, "GB": 0.14, "ES": 0.10, "IT": 0.10, "NL": 0.08, "BE": 0.05, "US": 0.07}
"""Where cardholders live, and most merchants."""
ABROAD = ("PT", "GR", "AT", "IE", "HR", "PA", "EC")
"""Only visited: by travellers, stolen cards and cloned cards."""
NEW_COUNTRY = "EE"
"""Appears only after drift, with the new fraud pattern."""
CURRENCY = {"GB": "GBP", "US": "USD", "PA": "USD", "EC": "USD"}  # everyone else here pays in EUR
EUR_TO = {"EUR": 1.0, "GBP": 0.85, "USD": 1.08}

# mcc: (kind, typical amount in EUR, share of that kind's merchants)
MCCS = {
    "5411": ("store", 45, 0.25), "5812": ("store", 38, 0.14), "5814": ("store", 12, 0.10),
    "5541": ("store", 60, 0.10), "5912": ("store", 22, 0.07), "5311": ("store", 70, 0.06),
    "5651": ("store", 65, 0.08), "4111": ("store", 8, 0.08), "7011": ("store", 160, 0.05),
    "5732": ("store", 180, 0.05), "5944": ("store", 350, 0.02),
    "5815": ("online", 9, 0.12), "5816": ("online", 15, 0.10), "5817": ("online", 6, 0.10),
    "4121": ("online", 18, 0.15), "5964": ("online", 55, 0.15), "5399": ("online", 45, 0.18),
    "4722": ("online", 320, 0.10), "5045": ("online", 220, 0.10),
    "6011": ("atm", 120, 1.0),
}
HIGH_VALUE_MCCS = {"5732", "5944", "4722", "5045"}
TESTING_MCCS = {"5815", "5816", "5817"}  # cheap digital goods: where stolen numbers are tried out
EVERYDAY_ONLINE_MCCS = {"4121", "5399", "5964"}  # rides, marketplaces, direct marketing: small, frequent
QUASI_CASH_MCC = "6051"
KIND_SHARE = {"store": 0.75, "online": 0.18, "atm": 0.07}
CHANNEL_HABIT = {"pos": 0.62, "ecom": 0.28, "atm": 0.07, "moto": 0.03}
CHANNELS = tuple(CHANNEL_HABIT)
KIND_OF_CHANNEL = {"pos": "store", "ecom": "online", "moto": "online", "atm": "atm"}
TRAVEL_SHARE = 0.02
EXPLORE_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class Merchant:
    id: str
    kind: str
    mcc: str
    country: str
    currency: str
    typical_eur: float


@dataclass(frozen=True, slots=True)
class Card:
    id: str
    home: str
    scale: float
    """Spending habit: multiplies every merchant's typical amount."""
    spread: float
    """Log-normal sigma of this cardholder's amounts."""
    channel_cum: tuple[float, ...]
    favourites: dict[str, tuple[int, ...]]
    """Kind of merchant → the merchants this card goes back to, favourite first."""
    devices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class World:
    seed: int
    cards: list[Card]
    activity_cum: list[float]
    merchants: list[Merchant]
    local: dict[tuple[str, str], list[int]]
    """(kind, country) → merchants."""
    by_kind: dict[str, list[int]]
    high_value: dict[str, list[int]]
    """Kind → merchants selling expensive things."""
    testing: list[int]
    breached: dict[int, list[int]]
    """Breached store → the cards that shop there."""
    quasi_cash: list[int]
    fraudster_devices: list[str]
    everyday_online: list[int]
    """Online merchants where small payments are routine (the low-value fraud's cover)."""

    def new_device(self, rng: Random) -> str:
        return device_id(rng, self.seed)

    def random_card(self, rng: Random) -> int:
        """Busy cards are picked more often."""
        return bisect_right(self.activity_cum, rng.random() * self.activity_cum[-1])

    def somewhere_else(self, rng: Random, kind: str, home: str, pool: list[int] | None = None) -> int:
        candidates = pool or self.by_kind[kind]
        for _ in range(8):
            merchant = rng.choice(candidates)
            if self.merchants[merchant].country != home:
                return merchant
        return merchant

    def usual_amount(self, rng: Random, card: Card, merchant: int) -> float:
        return card.scale * self.merchants[merchant].typical_eur * math.exp(rng.gauss(0.0, card.spread))


def device_id(rng: Random, seed: int) -> str:
    """Fraudsters' devices look like everyone else's: the id gives nothing away."""
    return f"dev-{seed}-{rng.getrandbits(40):010x}"


def genuine_payment(world: World, rng: Random, card_index: int) -> tuple[int, float, str, str | None]:
    """Where a cardholder pays, how much in EUR, through which channel and from which device."""
    card = world.cards[card_index]
    channel = CHANNELS[bisect_right(card.channel_cum, rng.random())]
    kind = KIND_OF_CHANNEL[channel]
    favourites = card.favourites[kind]
    u = rng.random()
    if u < TRAVEL_SHARE and kind != "online":
        merchant = world.somewhere_else(rng, kind, card.home)
    elif u < EXPLORE_SHARE:
        merchant = rng.choice(world.local.get((kind, card.home)) or world.by_kind[kind])
    else:
        # squaring a uniform favours the first favourites: the usual shop gets most visits
        merchant = favourites[int(len(favourites) * rng.random() ** 2)]
    amount = world.usual_amount(rng, card, merchant)
    device = (card.devices[0] if rng.random() < 0.9 else card.devices[-1]) if channel == "ecom" else None
    return merchant, amount, channel, device


def build_world(rng: Random, seed: int, n_cards: int, n_merchants: int) -> World:
    merchants = [_merchant(rng, f"m-{seed}-{i}", kind) for i, kind in enumerate(_kinds(rng, n_merchants))]
    merchants += [Merchant(f"m-{seed}-{n_merchants + i}", "online", QUASI_CASH_MCC, NEW_COUNTRY, "EUR", 900.0)
                  for i in range(3)]
    regular = range(n_merchants)
    by_kind = {kind: [m for m in regular if merchants[m].kind == kind] for kind in KIND_SHARE}
    local: dict[tuple[str, str], list[int]] = {}
    for m in regular:
        local.setdefault((merchants[m].kind, merchants[m].country), []).append(m)
    cards = [_card(rng, f"card-{seed}-{i}", local, by_kind, seed) for i in range(n_cards)]
    stores = by_kind["store"]
    breached: dict[int, list[int]] = {m: [] for m in rng.sample(stores, max(1, len(stores) // 100))}
    for i, card in enumerate(cards):
        for m in card.favourites["store"]:
            if m in breached:
                breached[m].append(i)
    return World(
        seed=seed,
        cards=cards,
        activity_cum=list(accumulate(rng.lognormvariate(0.0, 0.6) for _ in cards)),
        merchants=merchants,
        local=local,
        by_kind=by_kind,
        high_value={kind: [m for m in ms if merchants[m].mcc in HIGH_VALUE_MCCS] or ms for kind, ms in by_kind.items()},
        testing=[m for m in by_kind["online"] if merchants[m].mcc in TESTING_MCCS][:5] or by_kind["online"][:5],
        breached=breached,
        quasi_cash=list(range(n_merchants, len(merchants))),
        fraudster_devices=[device_id(rng, seed) for _ in range(25)],
        everyday_online=[m for m in by_kind["online"] if merchants[m].mcc in EVERYDAY_ONLINE_MCCS] or by_kind["online"],
    )


def _kinds(rng: Random, n: int) -> list[str]:
    """Every kind at least once, so every channel has somewhere to pay."""
    kinds = list(KIND_SHARE) + rng.choices(list(KIND_SHARE), list(KIND_SHARE.values()), k=max(0, n - 3))
    return kinds[:n]


def _merchant(rng: Random, merchant_id: str, kind: str) -> Merchant:
    mccs = [mcc for mcc, (k, _, _) in MCCS.items() if k == kind]
    mcc = rng.choices(mccs, [MCCS[m][2] for m in mccs])[0]
    if kind != "online" and rng.random() < 0.12:
        country = rng.choice(ABROAD)
    else:
        country = rng.choices(list(HOME_COUNTRIES), list(HOME_COUNTRIES.values()))[0]
    typical = MCCS[mcc][1] * rng.lognormvariate(0.0, 0.3)
    return Merchant(merchant_id, kind, mcc, country, CURRENCY.get(country, "EUR"), typical)


def _card(rng: Random, card_id: str, local: dict, by_kind: dict, seed: int) -> Card:
    home = rng.choices(list(HOME_COUNTRIES), list(HOME_COUNTRIES.values()))[0]
    habit = [share * rng.gammavariate(2.0, 1.0) for share in CHANNEL_HABIT.values()]
    total = sum(habit)
    favourites = {}
    for kind, (low, high) in {"store": (4, 12), "online": (2, 6), "atm": (1, 3)}.items():
        pool = (local.get((kind, home)) if kind != "online" else None) or by_kind[kind]
        favourites[kind] = tuple(rng.sample(pool, min(len(pool), rng.randint(low, high))))
    return Card(
        id=card_id,
        home=home,
        scale=rng.lognormvariate(0.0, 0.4),
        spread=rng.uniform(0.4, 0.8),
        channel_cum=tuple(c / total for c in accumulate(habit))[:3],
        favourites=favourites,
        devices=tuple(device_id(rng, seed) for _ in range(rng.randint(1, 2))),
    )
