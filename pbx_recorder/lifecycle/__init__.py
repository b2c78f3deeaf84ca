"""Recording lifecycle jobs: migration, retention, legal holds, erasure, capacity, catalog backup.

Each module takes plain parameters (a sqlite3 connection, ``{name: Tier}``, numbers);
``runtime.py`` is the one place that builds them from the Config for the CLI.
"""
