"""The authenticated operator service (``pbx-recorder serve``): accounts, sessions, row scopes
and the JSON API in front of the catalog and the recordings."""
