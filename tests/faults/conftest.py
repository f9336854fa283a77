"""The fault suite's table: one row per run, printed at the end of the session."""

from __future__ import annotations

import pytest

from fraudstream.faults.accounting import Account

ROWS: list[Account] = []


@pytest.fixture
def table() -> list[Account]:
    return ROWS


def pytest_terminal_summary(terminalreporter) -> None:
    if ROWS:
        terminalreporter.write_sep("=", "fault table")
        terminalreporter.write_line(Account.HEADER)
        for row in ROWS:
            terminalreporter.write_line(row.row())


def pytest_collection_modifyitems(config, items) -> None:
    """Runs only when asked for (``-m faults``): the suite takes minutes and owns the CPU."""
    if "faults" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("faults") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
