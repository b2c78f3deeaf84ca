"""The catalog: calls, recordings and what the lifecycle needs (SQLite)."""

from pbx_recorder.catalog.queries import CallFilters
from pbx_recorder.catalog.repository import Catalog

__all__ = ["Catalog", "CallFilters"]
