"""A recording from the PBX to the tier: closure, spool, pipeline, shipper, manifest, signatures,
the ledger, the call seal and ``verify``."""
