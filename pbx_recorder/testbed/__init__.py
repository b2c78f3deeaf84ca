"""A private, throw-away Asterisk + sipp test bed (used by tests/real and ``pbx-recorder demo``).

Nothing here touches /etc/asterisk or default ports: every instance lives in its own
work directory, on 127.0.0.1, on ports chosen at run time.
"""

from pbx_recorder.testbed.asterisk import PrivateAsterisk
from pbx_recorder.testbed.audio_stats import AudioStats, audio_stats
from pbx_recorder.testbed.ports import PortAllocator, free_tcp_port, free_udp_port
from pbx_recorder.testbed.sipp import SippCall, SippResult, SippUas

__all__ = [
    "AudioStats", "PortAllocator", "PrivateAsterisk", "SippCall", "SippResult", "SippUas",
    "audio_stats", "free_tcp_port", "free_udp_port",
]
