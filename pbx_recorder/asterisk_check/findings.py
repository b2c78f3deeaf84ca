"""What ``pbx-recorder asterisk check`` reports: named findings, each with its one-line fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pbx_recorder.asterisk_check.conf_tree import Note

ERROR, WARNING, INFO, OK = "error", "warning", "info", "ok"
SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2, OK: 3}


@dataclass(frozen=True)
class Finding:
    code: str  #: stable name (``ami-timestampevents``), for scripts reading ``--json``
    severity: str  #: error | warning | info | ok
    where: str  #: file:line, or the file
    message: str  #: what is wrong (or right); never a secret
    fix: str = ""  #: the fix, in one line

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


#: the #include notes of conf_tree, as findings: (severity, message, fix)
_NOTES = {
    "include-missing": (ERROR, "#include {t}: no such readable file (Asterisk then refuses the whole file)",
                        "create the file, or use #tryinclude for an optional one"),
    "include-empty": (WARNING, "#include {t}: the pattern matches no file",
                      "install the file it is meant to include, or remove the line"),
    "include-loop": (ERROR, "#include {t}: includes a file already being read (a loop)",
                     "remove the #include that leads back to an including file"),
    "include-depth": (ERROR, "#include {t}: nested too deep (a loop through different names?)",
                      "flatten the #include chain"),
    "include-outside": (ERROR, "#include {t}: a relative path that leaves the Asterisk config folder: "
                               "not followed", "use an absolute path, or keep included files under --etc"),
    "exec-not-followed": (WARNING, "#exec {t}: not run by this check; what it prints is not checked",
                          "check the command's output by hand, or replace it with a file"),
    "directive-unknown": (WARNING, "unknown directive {t!r}: Asterisk ignores it",
                          "use #include, #tryinclude or #exec"),
    "template-missing": (ERROR, "the section inherits template {t!r}, which is not defined before it",
                         "define the template ([name](!)) above the section that uses it"),
}


def from_note(note: Note) -> Finding:
    severity, message, fix = _NOTES[note.kind]
    return Finding(note.kind, severity, str(note.origin), message.format(t=note.target), fix)


def exit_code(findings: list[Finding], unreadable: bool) -> int:
    """2 when some input could not be read, else 1 when any error, else 0."""
    if unreadable:
        return 2
    return 1 if any(f.severity == ERROR for f in findings) else 0


def table(findings: list[Finding]) -> str:
    """Plain text, worst first: one line per finding, its fix indented under it."""
    rows = sorted(findings, key=lambda f: SEVERITY_ORDER.get(f.severity, 9))
    lines = []
    for f in rows:
        lines.append(f"{f.severity.upper():<8} {f.code:<28} {f.where}")
        lines.append(f"         {f.message}")
        if f.fix and f.severity != OK:
            lines.append(f"         fix: {f.fix}")
    counts = {s: sum(1 for f in findings if f.severity == s) for s in (ERROR, WARNING)}
    lines.append(f"{counts[ERROR]} error(s), {counts[WARNING]} warning(s)")
    return "\n".join(lines)
