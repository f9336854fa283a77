"""The topic table is the truth: every service reads exactly the topics that name it."""

from __future__ import annotations

import importlib

import pytest

from services import SERVICES
from shared.topics import TOPICS


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_service_reads_exactly_the_topics_whose_consumers_name_it(name):
    spec = importlib.import_module(SERVICES[name]).SPEC
    assert spec.name == name
    assert len(set(spec.inputs)) == len(spec.inputs) and not set(spec.inputs) & set(spec.follows)
    assert set(spec.inputs) | set(spec.follows) == {t.name for t in TOPICS.values() if name in t.consumers}


def test_every_consumer_in_the_table_is_a_service_or_a_known_outsider():
    outsiders = {"downstream", "analysts", "ops"}
    named = {c for t in TOPICS.values() for c in t.consumers}
    assert named - outsiders == set(SERVICES)
