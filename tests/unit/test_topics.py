"""The topic table is the truth: every service reads exactly the topics that name it."""

from __future__ import annotations

import importlib

import pytest

from services import SERVICES
from shared.topics import TOPICS


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_service_reads_exactly_the_topics_whose_consumers_name_it(name):
    module = importlib.import_module(SERVICES[name])
    if name == "dashboard":  # a Faust app, not the batch runner: it declares its agents' topics
        declared = set(module.INPUTS)
    else:
        spec = module.SPEC
        assert spec.name == name
        assert len(set(spec.inputs)) == len(spec.inputs) and not set(spec.inputs) & set(spec.follows)
        declared = set(spec.inputs) | set(spec.follows)
    assert declared == {t.name for t in TOPICS.values() if name in t.consumers}


def test_every_consumer_in_the_table_is_a_service_or_a_known_outsider():
    outsiders = {"downstream", "analysts", "ops"}
    named = {c for t in TOPICS.values() for c in t.consumers}
    assert named - outsiders == set(SERVICES)
