"""Console messages in English and Simplified Chinese: every ``messages_<area>.py`` merged.

Each module holds ``MESSAGES = {"en": {...}, "zh": {...}}`` with keys prefixed by its area.
:func:`translator` gives ``t(key)`` for a language; an unknown key shows as itself.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from functools import cache

LANGUAGES = ("en", "zh")


@cache
def catalog() -> dict[str, dict[str, str]]:
    import pbx_recorder.web as web

    merged: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    for info in pkgutil.iter_modules(web.__path__):
        if info.name.startswith("messages_"):
            module = importlib.import_module(f"pbx_recorder.web.{info.name}")
            for lang, texts in module.MESSAGES.items():
                merged.setdefault(lang, {}).update(texts)
    return merged


def translator(lang: str) -> Callable[[str], str]:
    texts = catalog().get(lang) or catalog()["en"]
    fallback = catalog()["en"]
    return lambda key: texts.get(key) or fallback.get(key) or key
