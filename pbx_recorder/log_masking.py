"""The logging side of masking: every handler the CLI and the daemon log through masks numbers.

Log calls already pass numbers through ``masking.mask_number``; this filter is the net under
them (a caller ID quoted in an exception text, a third-party library's message): each
record's final message goes through ``masking.mask_text`` before any handler formats it.
"""

from __future__ import annotations

import logging

from pbx_recorder.core.masking import mask_log_args


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg, record.args = mask_log_args(record.msg, record.args)
        except (TypeError, ValueError):  # a malformed format: leave it to logging's own error path
            pass
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_log_args(logging.Formatter().formatException(record.exc_info), ())[0]
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of ``logger`` (default: root) that lacks it."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
