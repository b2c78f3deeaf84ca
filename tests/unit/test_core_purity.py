"""The decision core imports no I/O frameworks: checked on the source (AST), transitively
through every pbx_recorder module the core modules import.  The core is every module of
``pbx_recorder/core`` (found by listing the folder, so a module added there is checked too), and
the pure helpers the catalog and the service keep beside their I/O; a core module imports
nothing of pbx_recorder outside the core but the exception hierarchy (``errors``)."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "pbx_recorder"
CORE_FOLDER = sorted(f"core.{p.stem}" for p in (PKG / "core").glob("*.py") if p.stem != "__init__")
CORE = [*CORE_FOLDER, "catalog.scopes", "service.roles", "service.ranges"]
FORBIDDEN = {"asyncio", "gevent", "socket", "boto3", "botocore", "redis", "panoramisk", "greenswitch",
             "threading", "subprocess", "prometheus_client"}


def _source(module: str) -> Path:
    """A module's file, or a package's ``__init__.py``."""
    path = PKG / module.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(top-level third-party/stdlib names, pbx_recorder submodules) imported anywhere in the file."""
    tree = ast.parse(_source(module).read_text(), filename=module)
    outside, inside = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            ours = node.module.startswith("pbx_recorder")  # a name may be a submodule
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if ours else [])
        for name in names:
            if name.startswith("pbx_recorder."):
                sub = name.removeprefix("pbx_recorder.")
                if _source(sub).exists():
                    inside.add(sub)
            elif name != "pbx_recorder":
                outside.add(name.split(".")[0])
    return outside, inside


def _closure(start: str) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    todo = [start]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        outside, inside = _imports(mod)
        seen[mod] = outside
        todo += sorted(inside)
    return seen


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io_framework(module):
    closure = _closure(module)
    bad = {mod: sorted(names & FORBIDDEN) for mod, names in closure.items() if names & FORBIDDEN}
    assert bad == {}, f"{module} reaches forbidden imports: {bad}"
    assert module in closure


def test_the_core_folder_holds_the_decision_core() -> None:
    assert {"core.events", "core.rules", "core.calls", "core.consent_policy", "core.retention",
            "core.naming", "core.masking", "core.planner"} <= set(CORE_FOLDER)


@pytest.mark.parametrize("module", CORE_FOLDER)
def test_core_module_imports_nothing_of_pbx_recorder_outside_the_core(module):
    outside_core = {sub for sub in _closure(module) if sub.split(".")[0] not in ("core", "errors")}
    assert outside_core == set(), f"{module} reaches {sorted(outside_core)}"


def test_checker_catches_a_forbidden_import(tmp_path, monkeypatch):
    fake = tmp_path / "pbx_recorder"
    fake.mkdir()
    (fake / "bad.py").write_text("import os\nfrom asyncio import sleep\nfrom pbx_recorder import worse\n")
    (fake / "worse.py").write_text("import socket as s\n")
    monkeypatch.setattr(__import__(__name__), "PKG", fake)
    closure = _closure("bad")
    assert closure["bad"] >= {"asyncio", "os"} and closure["worse"] == {"socket"}
