from fraudstream import schemas
from shared.events import ALL_EVENTS


def test_committed_schemas_match_the_models():
    stale = schemas.drift()
    assert stale == [], f"run `fraudstream schemas` and commit: {stale} differ from shared/events.py"


def test_every_event_is_frozen_versioned_and_strict():
    for event in ALL_EVENTS:
        assert event.model_config["frozen"] and event.model_config["extra"] == "forbid", event
        assert event.model_fields["schema_version"].default == 1, event
