"""scripts/test collects each tier from its own folders: a test whose ``real`` marker does not
match its folder (tests/real) would run in no pass, so collection refuses it (tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

from tests.conftest import misplaced


@dataclass
class Item:
    nodeid: str
    real: bool

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "real" and self.real else None


def test_a_test_marked_otherwise_than_its_folder_is_named() -> None:
    items = [Item("tests/real/test_a.py::t", True), Item("tests/unit/test_b.py::t", False),
             Item("tests/browser/test_c.py::t", False), Item("tests/unit/test_d.py::t", True),
             Item("tests/real/test_e.py::t", False)]
    assert misplaced(items) == ["tests/unit/test_d.py::t", "tests/real/test_e.py::t"]  # type: ignore[arg-type]
