"""The decision core imports no I/O frameworks: checked on the source (AST), transitively
through every pbx_recorder module the core modules import."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "pbx_recorder"
CORE = ["naming", "rules", "consent_policy", "calls", "call_model", "retention", "events", "commands",
        "constants", "call_faults", "catalog.scopes", "service.roles", "service.ranges"]
FORBIDDEN = {"asyncio", "gevent", "socket", "boto3", "botocore", "redis", "panoramisk", "greenswitch",
             "threading", "subprocess", "prometheus_client"}


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(top-level third-party/stdlib names, pbx_recorder submodules) imported anywhere in the file."""
    tree = ast.parse((PKG / (module.replace(".", "/") + ".py")).read_text(), filename=module)
    outside, inside = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + (
                [f"{node.module}.{a.name}" for a in node.names] if node.module == "pbx_recorder" else [])
        for name in names:
            if name.startswith("pbx_recorder."):
                sub = name.removeprefix("pbx_recorder.")
                if (PKG / (sub.replace(".", "/") + ".py")).exists():
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


def test_checker_catches_a_forbidden_import(tmp_path, monkeypatch):
    fake = tmp_path / "pbx_recorder"
    fake.mkdir()
    (fake / "bad.py").write_text("import os\nfrom asyncio import sleep\nfrom pbx_recorder import worse\n")
    (fake / "worse.py").write_text("import socket as s\n")
    monkeypatch.setattr(__import__(__name__), "PKG", fake)
    closure = _closure("bad")
    assert closure["bad"] >= {"asyncio", "os"} and closure["worse"] == {"socket"}
