"""The fault suite's tally: each cell of ``tests/test_faults.py`` attaches its counts to its test's
report, and one summary line is printed at the end of the run (whether or not output is captured).

Reports travel to the process that prints the summary, which under ``-n`` (pytest-xdist) is not
the one that ran the cell. Registered by ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Cell:
    """One fault, after its calls: what should be billed and what was found."""

    name: str
    calls: int
    expected: int  # successful or partial (billed) calls
    found: int  # of those, events in Lago or in the outbox
    lost: int
    duplicated: int  # billed twice: two Lago events for one call, or a call's event in Lago and pending in the outbox
    unexpected: int  # events for calls that must bill nothing
    resends: int  # events Lago refused as already stored (harmless: same id, same timestamp)
    deferred: int  # events that were in the outbox before the cell's replay
    unbillable: int = 0  # calls cut by SIGKILL: nothing of the server runs after it (see docs)
    note: str = ""  # what else the cell measured (e.g. a drain rate)
    overshoot_cents: float | None = None  # budget cells: billed past the limit (the goal is 0)

    def line(self) -> str:
        return (
            f"{self.name:<26} calls {self.calls:>2}  expected {self.expected:>2}  found {self.found:>2}  "
            f"lost {self.lost}  duplicated {self.duplicated}  unexpected {self.unexpected}  "
            f"resends {self.resends}  deferred {self.deferred}"
            + (f"  unbillable (killed) {self.unbillable}" if self.unbillable else "")
            + (f"  [{self.note}]" if self.note else "")
            + (f"  overshoot {self.overshoot_cents:.2f} cents" if self.overshoot_cents is not None else "")
        )


CELLS: list[Cell] = []  # in the process that prints the summary
PROPERTY = "fault_cell"


def record(item: pytest.Item, cell: Cell) -> None:
    """Attach ``cell`` to the report of the test ``item`` is running."""
    item.user_properties.append((PROPERTY, dataclasses.asdict(cell)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        CELLS.extend(Cell(**value) for name, value in report.user_properties if name == PROPERTY)


def summary() -> str:
    budgets = [c for c in CELLS if c.overshoot_cents is not None]
    return (
        f"fault suite: {len(CELLS)} cells, {sum(c.calls for c in CELLS)} calls, "
        f"{sum(c.found for c in CELLS)} events, {sum(c.lost for c in CELLS)} lost, "
        f"{sum(c.duplicated for c in CELLS)} duplicated, {sum(c.unexpected for c in CELLS)} unexpected"
        + (f", budget overshoot {sum(c.overshoot_cents or 0 for c in budgets):.2f} cents" if budgets else "")
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not CELLS:
        return
    terminalreporter.section("fault suite")
    for cell in CELLS:
        terminalreporter.write_line(cell.line())
    terminalreporter.write_line(summary())
