"""After every CLI command: sign the ledger and audit chain heads it extended, when this process
can read the signing key (the recorder's account, a root front end).

The audit rows that matter most are written by operator commands outside the lifecycle runtime
(``calls search|show|live --unmask``, ``calls pause``, refusals recorded by ``cli.authz``).  Until
a head covers them, an insider with write access to the catalog file can delete them from the
tail of the chain (and lower ``sqlite_sequence``) without a trace; signing the head as the
command ends closes that window.  Never fails the command: no key, no catalog, no config ->
nothing done (the daemon's next checkpoint covers the rows).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


def sign_heads(config_path: str | None) -> None:
    try:
        from pbx_recorder.config import load_config

        config = load_config(config_path)
        # a PostgreSQL catalog is its URL (catalog.path then only anchors the node's folder)
        catalog = config.catalog.target
        key_file = config.signing.key_file
        if key_file is None or not (config.catalog.url or Path(catalog).is_file()) or \
                not os.access(key_file, os.R_OK):
            return  # unreadable key: normal for an operator account (checkpoint_if_possible agrees)
        # only now: a command that cannot sign does not import the signing code (cli/lazy_group.py)
        from pbx_recorder.lifecycle.journal import open_catalog
        from pbx_recorder.recording.chain_head import checkpoint_if_possible

        conn = open_catalog(catalog)
        try:
            failed = checkpoint_if_possible(config, conn, time.time())
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - a checkpoint must never fail the command it follows
        log.debug("chain heads not signed after the command: %s", exc)
        return
    for what in failed:
        log.warning("chain head checkpoint after the command failed: %s", what)
