"""Typed reading of the merged config data, collecting every error with file and key.

``Node`` wraps one mapping of the merged data.  Each getter checks type and range,
records an error (never raises) and returns a usable fallback, so one pass over the
whole file reports every problem.  ``Node.finish()`` reports unknown keys with a
"did you mean" suggestion.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pbx_recorder.config import yaml_load
from pbx_recorder.config.secret import Secret
from pbx_recorder.errors import ConfigError

KeyPath = tuple[str | int, ...]
_MISSING: Any = object()


class EnvText(str):
    """A value from an environment variable: raw text, parsed as a YAML scalar on demand."""


def format_key(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _yaml_scalar(text: str) -> Any:
    try:
        return yaml_load.load(text)  # bounded like the files: env values are YAML too
    except yaml.YAMLError:
        return text


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()}; quote it: YAML reads yes/no/on/off as booleans)"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Origin:
    label: str  # file path or "env PBX_RECORDER_..."
    base_dir: Path  # relative paths given here resolve against this
    rank: int = 0  # layer order: a higher rank overrides a lower one


@dataclass
class Ctx:
    main_label: str  # the main config file, or "<defaults>"
    default_base: Path  # where embedded-default relative paths resolve (cwd)
    main_file: Path | None = None  # the main config file, when there is one
    origins: dict[KeyPath, Origin] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)

    def origin(self, path: KeyPath) -> Origin | None:
        for n in range(len(path), 0, -1):
            found = self.origins.get(path[:n])
            if found is not None:
                return found
        return None

    def error(self, path: KeyPath, message: str) -> None:
        origin = self.origin(path)
        label = origin.label if origin else self.main_label
        self.errors.append(ConfigError(message, file=label, key=format_key(path) or None))

    def base_dir(self, path: KeyPath) -> Path:
        origin = self.origin(path)
        return origin.base_dir if origin else self.default_base


class Node:
    """One mapping in the config, read key by key."""

    def __init__(self, ctx: Ctx, path: KeyPath, raw: Any) -> None:
        self.ctx = ctx
        self.path = path
        self.data: dict[str, Any] = {}
        self._used: set[str] = set()
        if raw is None:
            return
        if not isinstance(raw, Mapping):
            ctx.error(path, f"expected a mapping, got {_type_name(raw)}")
            return
        for key, value in raw.items():
            if not isinstance(key, str):
                ctx.error(path, f"key {key!r} must be a string (quote it)")
                continue
            self.data[key] = value

    # --- plumbing --------------------------------------------------------------------

    def key(self, name: str | int) -> KeyPath:
        return (*self.path, name)

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = None) -> Any:
        self._used.add(name)
        return self.data.get(name, default)

    def error(self, name: str, message: str) -> None:
        self.ctx.error(self.key(name), message)

    def child(self, name: str) -> Node:
        return Node(self.ctx, self.key(name), self.raw(name))

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every key as a user-chosen name (tier names, class names, ...)."""
        for name in self.data:
            self._used.add(name)
            yield name, self.data[name]

    def finish(self, extra_allowed: Sequence[str] = ()) -> None:
        allowed = sorted(self._used | set(extra_allowed))
        for name in self.data:
            if name in self._used or name in extra_allowed:
                continue
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.error(name, f"unknown key{hint}")

    # --- typed getters ---------------------------------------------------------------

    def _get(self, name: str, default: Any, optional: bool) -> Any:
        value = self.raw(name, _MISSING)
        if value is _MISSING:
            return _MISSING
        if value is None and not optional:
            return _MISSING  # an empty value means: use the default
        return value

    def get_str(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        optional: bool = False,
        choices: Sequence[str] | None = None,
        regex: str | None = None,
        what: str | None = None,
        digits: bool = False,
        show: bool = True,
    ) -> Any:
        value = self._get(name, default, optional)
        if value is _MISSING:
            if default is _MISSING:
                self.error(name, "is required")
                return ""
            return default
        if value is None:
            return None
        if digits and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, bool) and choices is not None and "yes" in choices and "no" in choices:
            value = "yes" if value else "no"  # `record: yes` unquoted is a YAML boolean
        if not isinstance(value, str):
            self.error(name, f"expected a string, got {_type_name(value)}")
            return default if default is not _MISSING else ""
        if choices is not None and value not in choices:
            close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.error(name, f"{value!r} is not one of: {', '.join(choices)}{hint}")
            return default if default is not _MISSING else choices[0]
        if regex is not None and not re.fullmatch(regex, value):
            shown = f"{value!r}" if show else "the value"  # show=False: may hold a password
            self.error(name, f"{shown} is not a valid {what or 'value'}")
            return default if default is not _MISSING else value
        return str(value)

    def _number(
        self, name: str, default: Any, optional: bool, kind: type, lo: float | None, hi: float | None
    ) -> Any:
        value = self._get(name, default, optional)
        if value is _MISSING:
            if default is _MISSING:
                self.error(name, "is required")
                return kind(0)
            return default
        if value is None:
            return None
        if isinstance(value, EnvText):
            value = _yaml_scalar(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
        if kind is float:
            ok = ok or isinstance(value, float)
        if not ok:
            want = "an integer" if kind is int else "a number"
            self.error(name, f"expected {want}, got {_type_name(value)} {value!r}")
            return kind(0) if default is _MISSING else default
        if lo is not None and value < lo:
            self.error(name, f"{value!r} is out of range (minimum {lo:g})")
            return kind(0) if default is _MISSING else default
        if hi is not None and value > hi:
            self.error(name, f"{value!r} is out of range (maximum {hi:g})")
            return kind(0) if default is _MISSING else default
        return kind(value)

    def get_int(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        optional: bool = False,
        lo: float | None = None,
        hi: float | None = None,
    ) -> Any:
        return self._number(name, default, optional, int, lo, hi)

    def get_float(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        optional: bool = False,
        lo: float | None = None,
        hi: float | None = None,
    ) -> Any:
        return self._number(name, default, optional, float, lo, hi)

    def get_port(self, name: str, default: Any = _MISSING, *, optional: bool = False) -> Any:
        return self.get_int(name, default, optional=optional, lo=1, hi=65535)

    def get_bool(self, name: str, default: Any = _MISSING, *, optional: bool = False) -> Any:
        value = self._get(name, default, optional)
        if value is _MISSING:
            if default is _MISSING:
                self.error(name, "is required")
                return False
            return default
        if value is None:
            return None
        if isinstance(value, EnvText):
            value = _yaml_scalar(value)
        if not isinstance(value, bool):
            self.error(name, f"expected true or false, got {_type_name(value)}")
            return False if default is _MISSING else default
        return value

    def get_str_list(self, name: str, *, choices: Sequence[str] | None = None) -> tuple[Any, ...]:
        """A list of strings; a single string is accepted as a one-element list."""
        value = self.raw(name, None)
        if value is None:
            return ()
        if isinstance(value, EnvText):
            value = _yaml_scalar(value)
        if isinstance(value, str | int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            self.error(name, f"expected a list of strings, got {_type_name(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str):
                self.ctx.error(self.key(name) + (i,), f"expected a string, got {_type_name(item)}")
                continue
            if choices is not None and item not in choices:
                self.ctx.error(self.key(name) + (i,), f"{item!r} is not one of: {', '.join(choices)}")
                continue
            out.append(item)
        return tuple(out)

    def get_path(self, name: str, default: Any = _MISSING, *, optional: bool = False) -> Any:
        """A path; relative ones resolve against the directory of the file that set them."""
        value = self._get(name, default, optional)
        if value is _MISSING:
            if default is None:
                return None
            if default is _MISSING:
                self.error(name, "is required")
                return None
            return (self.ctx.default_base / Path(default)).resolve()
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.error(name, f"expected a path string, got {_type_name(value)}")
            return None
        p = Path(value).expanduser()
        if not p.is_absolute():
            p = self.ctx.base_dir(self.key(name)) / p
        return p.resolve()

    def _rank(self, name: str) -> int:
        origin = self.ctx.origin(self.key(name))
        return origin.rank if origin else -1

    def get_secret(self, name: str) -> Secret | None:
        """``name`` inline / from env, or ``name_file`` (read, stripped).  Never echoes values."""
        file_key = f"{name}_file"
        inline = self.raw(name, None)
        file_value = self.raw(file_key, None)
        if inline is not None and file_value is not None:
            # a higher layer (e.g. the environment) overrides the other form from a lower one
            rank_inline = self._rank(name)
            rank_file = self._rank(file_key)
            if rank_inline == rank_file:
                self.error(name, f"give either {name!r} or {file_key!r}, not both")
                return None
            if rank_inline > rank_file:
                file_value = None
            else:
                inline = None
        if inline is not None:
            if isinstance(inline, int | float) and not isinstance(inline, bool):
                inline = str(inline)
            if not isinstance(inline, str):
                self.error(name, f"expected a string, got {_type_name(inline)}")
                return None
            origin = self.ctx.origin(self.key(name))
            return Secret(str(inline), source=origin.label if origin else "inline")
        if file_value is None:
            return None
        path = self.get_path(file_key)
        if path is None:
            return None
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            self.error(file_key, f"cannot read secret file {str(path)!r}: {exc.strerror or exc}")
            return None
        except UnicodeDecodeError:
            self.error(file_key, f"secret file {str(path)!r} is not UTF-8 text")
            return None
        if not text:
            self.error(file_key, f"secret file {str(path)!r} is empty")
            return None
        return Secret(text, source=f"file {path}")
