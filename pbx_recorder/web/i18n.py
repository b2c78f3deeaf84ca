"""The console's languages: every ``messages_<area>.py`` of this package merged into one table.

Each module holds ``MESSAGES = {"en": {...}, "zh": {...}}`` (Simplified Chinese), keys prefixed by
their area (``search.``, ``call.`` ...).  A key missing in a language falls back to English, then
to the key itself (a page never fails over a missing text).  A key defined twice is an error at
import, so two areas cannot silently overwrite each other.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from functools import cache

LANGS: tuple[str, ...] = ("en", "zh")
DEFAULT_LANG = "en"
#: the name of each language in itself (the switch in the page)
LANG_NAMES: Mapping[str, str] = {"en": "English", "zh": "中文"}


@cache
def catalog() -> dict[str, dict[str, str]]:
    """{lang: {key: text}} from every ``messages_*`` module of ``pbx_recorder.web``."""
    import pbx_recorder.web as package

    merged: dict[str, dict[str, str]] = {lang: {} for lang in LANGS}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("messages_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for lang, texts in getattr(module, "MESSAGES", {}).items():
            if lang not in merged:
                raise ValueError(f"{info.name}: unknown language {lang!r} (known: {', '.join(LANGS)})")
            for key, text in texts.items():
                if key in merged[lang]:
                    raise ValueError(f"{info.name}: message {key!r} ({lang}) is defined twice")
                merged[lang][key] = text
    return merged


def known(lang: str | None) -> str:
    """``lang`` when it is one of :data:`LANGS`, else the default."""
    return lang if lang in LANGS else DEFAULT_LANG


def translator(lang: str) -> Callable[[str], str]:
    texts, english = catalog()[known(lang)], catalog()[DEFAULT_LANG]

    def t(key: str) -> str:
        return texts.get(key) or english.get(key) or key

    return t
