"""Read one Asterisk ``.conf`` file and what it ``#include``s; pyst2 parses the lines.

pyst2's ``asterisk.config.Config`` is the parser: it splits ``[section]`` headers, ``name = value``
and ``name => value`` lines and ``;`` comments.  It opens one file itself and knows nothing of
``#include``, so :class:`_LinesConfig` hands it the lines this module expanded instead, and a
parallel list maps each line back to its file and line number.  What pyst2 cannot take is handled
here, minimally, before it sees the lines:

- ``#include`` / ``#tryinclude``: replaced by the included lines.  A relative path is resolved
  against the Asterisk config folder (``--etc``), as Asterisk itself does (``config.c`` joins it
  with ``astetcdir``, whatever file includes it); globs are expanded, sorted.  A relative path that
  leaves ``--etc`` is not followed; an absolute one is, when it is readable.  A missing file, a
  loop and nesting past :data:`MAX_DEPTH` are notes (findings for the check), not exceptions.
- ``#exec`` / ``#tryexec``: never run; a note says so.
- template headers ``[name](!)``, ``[name](tpl)``, ``[name](!,tpl)``, ``[name](+)``: pyst2 raises
  ``ParseError("Missing '[' or ']'")`` on them (tests/unit/test_asterisk_conf_tree.py), so the
  suffix is cut off and kept: ``!`` marks a template (not a real section), a name inherits that
  template's items first, ``+`` adds to an earlier section of the same name.
- ``;-- ... --;`` block comments: dropped (pyst2 would parse what they hide).
- ``\\;`` (a literal ``;`` in a value, e.g. a secret): pyst2 would start a comment there, so it is
  hidden from it and put back in the value.

A file that cannot be read, is larger than :data:`MAX_FILE_BYTES`, holds NUL bytes or does not
parse raises ``ConfigError`` (exit 2) naming the file and line: unreadable input, never a traceback.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbx_recorder.errors import ConfigError

MAX_FILE_BYTES = 4 * 1024 * 1024  #: a real manager.conf is a few KiB, a big extensions.conf a few MiB
MAX_TOTAL_LINES = 500_000  #: over every included file (a glob can include many)
MAX_DEPTH = 8  #: nested #include levels (Debian's stock tree uses 1)
_HEADER = re.compile(r"^\[([^\]]*)\]\s*\(([^)]*)\)(.*)$")
_GLOB_CHARS = set("*?[")
_ESCAPED_SEMICOLON = "\0"  #: stands for ``\;`` while pyst2 parses (no file with a NUL byte is read)


@dataclass(frozen=True)
class Origin:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Note:
    """Something about the #include tree the check reports: ``kind`` is the finding's code."""

    #: include-missing, include-empty, include-loop, include-depth, include-outside,
    #: exec-not-followed, directive-unknown, template-missing
    kind: str
    origin: Origin
    target: str


@dataclass
class Section:
    name: str
    origin: Origin
    template: bool = False
    items: list[tuple[str, str, Origin]] = field(default_factory=list)  #: (lower-case name, value, where)

    def values(self, name: str) -> list[tuple[str, Origin]]:
        return [(value, where) for key, value, where in self.items if key == name]

    def last(self, name: str) -> tuple[str, Origin] | None:
        """The value that counts when a name repeats: the last (as manager.c reads a user)."""
        found = self.values(name)
        return found[-1] if found else None


@dataclass
class ConfTree:
    path: Path
    sections: list[Section]
    notes: list[Note]

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name and not s.template), None)


def _read_lines(path: Path) -> list[str]:
    try:  # non-blocking open: a FIFO planted in the tree must not hang a check run by root
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError("not a regular file (a device, FIFO or socket): not read", file=str(path))
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"more than {MAX_FILE_BYTES // (1024 * 1024)} MiB: not an Asterisk config file",
                          file=str(path))
    if b"\0" in data:
        raise ConfigError("binary data (NUL bytes): not an Asterisk config file", file=str(path))
    return data.decode("utf-8", errors="replace").splitlines()  # a Latin-1 comment is no reason to stop


def _strip_comment(line: str) -> str:
    """The line without its ``;`` comment (Asterisk's ``\\;`` escape kept)."""
    return re.split(r"(?<!\\);", line, maxsplit=1)[0].strip()


class _Expander:
    def __init__(self, etc: Path) -> None:
        self.etc = etc
        self.etc_real = etc.resolve()
        self.lines: list[tuple[str, Origin]] = []
        self.notes: list[Note] = []

    def expand(self, path: Path, stack: tuple[Path, ...]) -> None:
        real = path.resolve()
        block = 0  # ;-- --; nesting
        for number, raw in enumerate(_read_lines(path), start=1):
            where = Origin(str(path), number)
            text, block = _drop_block_comments(raw, block)
            if len(self.lines) >= MAX_TOTAL_LINES:
                raise ConfigError(f"more than {MAX_TOTAL_LINES} lines with its includes: refused",
                                  file=str(path))
            if text.lstrip().startswith("#"):
                self._directive(_strip_comment(text), where, (*stack, real))
                self.lines.append(("", where))  # keeps pyst2's numbering one line per origin
            else:
                self.lines.append((text, where))

    def _directive(self, text: str, where: Origin, stack: tuple[Path, ...]) -> None:
        match = re.match(r"#\s*(\w*)\s*(.*)$", text)
        word, arg = (match.group(1), match.group(2)) if match else ("", text)
        word, target = word.lower(), arg.strip().strip('"').strip("<>").strip()
        if word in ("exec", "tryexec"):
            self.notes.append(Note("exec-not-followed", where, target))
        elif word not in ("include", "tryinclude"):
            self.notes.append(Note("directive-unknown", where, text))
        elif len(stack) > MAX_DEPTH:
            self.notes.append(Note("include-depth", where, target))
        else:
            for path in self._targets(target, where, optional=word == "tryinclude"):
                if path.resolve() in stack:
                    self.notes.append(Note("include-loop", where, str(path)))
                else:
                    self.expand(path, stack)

    def _targets(self, target: str, where: Origin, *, optional: bool) -> list[Path]:
        relative = not os.path.isabs(target)
        pattern = self.etc / target if relative else Path(target)
        if _GLOB_CHARS & set(target):
            found = [Path(p) for p in sorted(glob.glob(str(pattern)))]
            if not found:
                self.notes.append(Note("include-empty", where, target))
        elif pattern.is_file() and os.access(pattern, os.R_OK):
            found = [pattern]
        else:
            if not optional:
                self.notes.append(Note("include-missing", where, target))
            return []
        inside = [p for p in found if not relative or p.resolve().is_relative_to(self.etc_real)]
        if len(inside) < len(found):
            self.notes.append(Note("include-outside", where, target))
        return [p for p in inside if p.is_file()]


def _drop_block_comments(line: str, depth: int) -> tuple[str, int]:
    """``line`` without what ``;-- ... --;`` block comments hide, and the nesting after it."""
    out, i = [], 0
    while i < len(line):
        if line.startswith(";--", i):
            depth, i = depth + 1, i + 3
        elif depth and line.startswith("--;", i):
            depth, i = depth - 1, i + 3
        else:
            if not depth:
                out.append(line[i])
            i += 1
    return "".join(out), depth


def _config_class() -> Any:
    import asterisk.config  # pyst2: imported by the command that needs it (README "CLI start time")

    class _LinesConfig(asterisk.config.Config):  # type: ignore[misc]
        """pyst2's parser over lines given to it (its ``load`` would open one file)."""

        def __init__(self, name: str, lines: list[str]) -> None:
            self._given = lines
            super().__init__(name)

        def load(self) -> None:
            self.raw_lines = self._given

    return _LinesConfig, asterisk.config.ParseError


def read_tree(path: Path, etc: Path) -> ConfTree:
    """Expand, pre-process and parse ``path``; ``ConfigError`` when it cannot be read or parsed."""
    expander = _Expander(etc)
    expander.expand(path, ())
    origins = [where for _, where in expander.lines]
    texts, header_options = [], {}
    for number, (text, _) in enumerate(expander.lines, start=1):
        match = _HEADER.match(text.strip())
        if match:
            header_options[number] = [o.strip() for o in match.group(2).split(",") if o.strip()]
            text = f"[{match.group(1)}]{match.group(3)}"
        texts.append(text.replace("\\;", _ESCAPED_SEMICOLON))
    config_class, parse_error = _config_class()
    try:
        config = config_class(str(path), texts)
    except parse_error as exc:
        number, problem = (exc.args + (None, None))[:2]
        where = origins[number - 1] if isinstance(number, int) and 0 < number <= len(origins) else path
        raise ConfigError(f"{where}: cannot parse: {problem}", file=str(path)) from exc
    return _sections(path, config, origins, header_options, expander.notes)


def _sections(path: Path, config: Any, origins: list[Origin], header_options: dict[int, list[str]],
              notes: list[Note]) -> ConfTree:
    sections: list[Section] = []
    by_name: dict[str, Section] = {}
    for category in config.categories:
        options = header_options.get(category.number, [])
        section = Section(category.name.strip(), origins[category.number - 1], template="!" in options)
        for parent in (o for o in options if o not in ("!", "+")):
            if parent in by_name:
                section.items.extend(by_name[parent].items)
            else:
                notes.append(Note("template-missing", section.origin, parent))
        section.items.extend((item.name.strip().lower(),
                              str(item.value).strip().replace(_ESCAPED_SEMICOLON, ";"),
                              origins[item.number - 1]) for item in category.items)
        earlier = by_name.get(section.name)
        if "+" in options and earlier is not None:
            earlier.items.extend(section.items)
            continue
        sections.append(section)
        by_name.setdefault(section.name, section)
    return ConfTree(path, sections, notes)
