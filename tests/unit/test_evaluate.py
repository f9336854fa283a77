"""``fraudstream evaluate``'s one pass: the twin scores as the services' model, batch arms
score every transaction, bad rows are refused with a reason, a zero amount is a transaction."""

from __future__ import annotations

import gc
import io

import pytest

from fraudstream.replay.arms import parse_arm
from fraudstream.replay.offline import evaluate
from fraudstream.replay.source import Stream
from fraudstream.simulator.traffic import SimulatorConfig, simulate, write_csv
from shared.settings import Settings
from shared.topics import TRANSACTIONS_RAW

DAY_S = 86400.0
LOOP_VERSIONS, ONLINE_VERSIONS = 4, 3  # the initial version, 2 snapshots (and 1 promoted refit)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("evaluate") / "history.csv"
    config = SimulatorConfig(seed=21, n_cards=150, n_merchants=30, fraud_rate=0.03)
    write_csv((e for e in simulate(config, 1500) if e.topic == TRANSACTIONS_RAW), path)
    text = path.read_text()
    # a zero amount (card testing), a row without a time and a duplicate, at the end of the file
    last = text.strip().splitlines()[-1].split(",")
    zero = [last[0] + "-zero", last[1], *last[2:4], "0", *last[5:]]
    bad = [last[0] + "-bad", "not a time", *last[2:]]
    return text + ",".join(zero) + "\n" + ",".join(bad) + "\n" + ",".join(last) + "\n"


def run(text: str, *arms: str):
    settings = Settings(publish_every_labels=50, genuine_sample_rate=0.5)
    stream = Stream(io.StringIO(text), label_delay_s=DAY_S)
    return stream, evaluate(settings, stream, [parse_arm(a) for a in arms], keep_ids=True)


def test_the_twin_scores_every_transaction_as_the_services_model(history):
    stream, out = run(history, "champion=linear", "twin=twin", "hgb=hgb:refit_days=1,window_days=7")
    assert len(out.ts) == 1501 and stream.transactions == 1502  # the zero amount in, the duplicate out
    assert stream.refused == {"malformed time": 1}
    assert out.refused == {"duplicate": 1, "label of an unknown or refused tx_id": 1}
    assert out.versions["champion"] == out.versions["twin"] >= 5 and out.versions["hgb"] >= 1
    assert list(out.scores["twin"]) == pytest.approx(list(out.scores["champion"]), rel=1e-5, abs=1e-7)  # float32
    assert all(0.0 <= s <= 1.0 for s in out.scores["hgb"]) and len(set(out.scores["hgb"])) > 100
    assert out.tx_ids[-1].endswith("-zero")
    assert gc.isenabled()  # off for the pass only


def test_arms_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown kind"):
        parse_arm("x=tree")
    with pytest.raises(ValueError, match="features must be one of"):
        parse_arm("x=twin:features=all")


def test_the_loop_arm_is_the_learner_with_its_scheduled_batch_refits(history):
    # the learner as configured: its champion, a snapshot per run of labels, and the batch
    # challenger refitted daily (judged by the learner's own refit) or never
    settings = Settings(publish_every_labels=50, genuine_sample_rate=0.5, retrain_min_labels=60,
                        retrain_min_frauds=5, batch_window_s=7 * DAY_S)
    stream = Stream(io.StringIO(history), label_delay_s=DAY_S)
    out = evaluate(settings, stream, [parse_arm("loop=loop:refit_days=1"), parse_arm("online=loop:refit_days=0")])
    assert len(out.scores["loop"]) == len(out.scores["online"]) == len(out.ts) == 1501
    assert all(0.0 <= s <= 1.0 for s in out.scores["loop"])
    assert out.versions == {"loop": LOOP_VERSIONS, "online": ONLINE_VERSIONS}
    assert list(out.scores["loop"]) != list(out.scores["online"])  # a refit was promoted and served
