"""The pure decision core: events, rules, the call state machine, consent policy, retention,
naming, masking, storage planning.  No I/O: nothing here imports asyncio, sockets, boto3 or
redis (``tests/unit/test_core_purity.py`` checks every module of this folder), and mypy runs
strict over all of it."""
