"""JSON Schema of every event, for producers and consumers in other languages.

``fraudstream schemas`` writes them to ``schemas/``; a test fails when the committed
files drift from the models, so the contract can't change by accident.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from shared.events import ALL_EVENTS

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def render() -> dict[str, bytes]:
    """File name → schema bytes (validation mode: what a producer must send)."""
    return {
        f"{event.__name__}.json": orjson.dumps(
            event.model_json_schema(mode="validation"), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        )
        + b"\n"
        for event in ALL_EVENTS
    }


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in render().items():
        path = directory / name
        path.write_bytes(body)
        written.append(path)
    return written


def drift(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    return [
        name
        for name, body in render().items()
        if not (directory / name).exists() or (directory / name).read_bytes() != body
    ]
