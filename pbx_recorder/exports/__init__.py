"""Exports of the console (issue 9): the search result as CSV or XLSX and recordings in bulk, each
in an AES-256 encrypted ZIP, written by a background job into the service's private export folder.

    columns.py     the allow-list of columns, cell values, formula neutralising (pure)
    store.py       the export folder (0700) and its files (0600), created and removed safely
    jobs.py        the ``export_jobs`` rows: create, progress, finish, fail, list, sweep
    stored_filter.py  what a job keeps of its filter: every value masked (pure)
    table_job.py   the search result -> CSV / XLSX, page by page from the catalog's keyset cursor
    audio_job.py   recordings -> decrypted audio files + manifest.json
    runner.py      starting a job in a thread of the service, and what start-up does
"""
