"""Every pbx_recorder module the tree names exists: dotted names (``pbx_recorder.recording.ledger``,
in imports, patch targets, logger names and docstrings) and file paths
(``pbx_recorder/core/rules.py``, in the README, docs, scripts and comments).  A module moved or
renamed without its references is caught here, not by the reader who follows a stale one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "pbx_recorder"
READ = ["pbx_recorder", "ami", "esl", "storage", "consent", "tests", "bench", "scripts", ".ci", "etc",
        "dialplan", "docs", "README.md"]
SUFFIXES = {".py", ".md", ".sh", ".yaml", ".toml", ".conf", ".service", ".html", ".js", ".xml"}
DOTTED = re.compile(r"\bpbx_recorder((?:\.[a-z_][a-z0-9_]*)+)")
SLASHED = re.compile(r"\bpbx_recorder/([a-z0-9_/]+\.py)\b")
#: names made up on purpose: a module a test builds in memory to check the CLI's command table
MADE_UP = {"pbx_recorder.cli.cmd_zz_fake"}


def _texts() -> list[tuple[Path, str]]:
    out = []
    for name in READ:
        top = ROOT / name
        paths = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in paths:
            if path.is_file() and path.suffix in SUFFIXES and "fixtures" not in path.parts:
                try:
                    out.append((path, path.read_text()))
                except UnicodeDecodeError:
                    continue
    return out


def dotted_resolves(parts: list[str]) -> bool:
    """``pbx_recorder`` + ``parts``: each package's next part is a module, a package or a name its
    ``__init__`` defines or imports; past a module anything goes (a class, a function ...)."""
    here = PKG
    for part in parts:
        if (here / part).is_dir():
            here = here / part
            continue
        if (here / f"{part}.py").is_file():
            return True
        init = here / "__init__.py"
        return here != PKG and init.is_file() and re.search(rf"\b{part}\b", init.read_text()) is not None
    return True


def test_every_named_module_exists() -> None:
    stale: dict[str, str] = {}
    for path, text in _texts():
        for m in DOTTED.finditer(text):
            if m.group(0) not in MADE_UP and not dotted_resolves(m.group(1).strip(".").split(".")):
                stale.setdefault(m.group(0), str(path.relative_to(ROOT)))
        for m in SLASHED.finditer(text):
            if not (PKG / m.group(1)).is_file():
                stale.setdefault(m.group(0), str(path.relative_to(ROOT)))
    assert stale == {}


def test_the_check_catches_a_stale_name() -> None:
    assert dotted_resolves(["recording", "ledger", "append"])
    assert dotted_resolves(["catalog", "Catalog"])  # a name the package's __init__ imports
    assert dotted_resolves(["core"])
    assert not dotted_resolves(["ledger"])  # moved to recording/ in session 26
    assert not dotted_resolves(["recording", "no_such_module"])
    assert not (PKG / "config.py").exists() and (PKG / "config" / "__init__.py").is_file()
