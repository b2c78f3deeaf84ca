"""``python -m pbx_recorder.cli`` (what the ``pbx-recorder`` console script runs)."""

from pbx_recorder.cli import run_main

run_main()
