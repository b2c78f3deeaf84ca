"""Messages of the console in English and Simplified Chinese: every ``messages_<area>.py`` of this
package (``MESSAGES = {"en": {...}, "zh": {...}}``) merged; ``translate`` falls back to English,
then to the key itself."""

from __future__ import annotations

import functools
import importlib
import pkgutil

LANGUAGES = ("en", "zh")


@functools.cache
def messages() -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    package = importlib.import_module(__package__ or "pbx_recorder.web")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("messages_"):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for lang, table in module.MESSAGES.items():
                merged.setdefault(lang, {}).update(table)
    return merged


def translate(lang: str, key: str) -> str:
    table = messages()
    return table.get(lang, {}).get(key) or table["en"].get(key) or key
