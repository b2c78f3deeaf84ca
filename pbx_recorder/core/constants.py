"""Names shared between the core and the edges: one place, one spelling.

Channel variables are what the dialplan reads after the recorder's Gosub; Redis keys
are prefixed so several recorder installations can share one Redis.
"""

from __future__ import annotations

# --- channel variables the core sets (SetChannelVar) and the dialplan reads ---
VAR_RESULT = "PBXREC_RESULT"  # record | refused | norecord
VAR_ROUTE = "PBXREC_ROUTE"  # refused call: "context,exten,prio" (set only for a goto; the snippet Goto()s it)
VAR_RECORDING_ID = "PBXREC_RECORDING_ID"  # set on the recorded channel: resync sees "already recording"
VAR_RECORDING_PATH = "PBXREC_RECORDING_PATH"  # the file being written (resync adopts it)
VAR_CALL_ID = "PBXREC_CALL_ID"
# MixMonitorID (option i()) of the recording started before the consent dialogue: the snippet's
# fail direction stops it by this id in the dialplan itself (the recorder may be dead)
VAR_DIALOGUE_MMID = "PBXREC_DIALOGUE_MMID"
# MixMonitorID (option i()) of the call recording the snippet itself started after a quick
# decision (consent/early_decide.py); the snippet clears it on entry, so it never names the
# MixMonitor of an earlier pass
VAR_EARLY_MMID = "PBXREC_EARLY_MMID"
VAR_CDR_RECORDINGFILE = "CDR(recordingfile)"

RESULT_RECORD = "record"
RESULT_REFUSED = "refused"
RESULT_NORECORD = "norecord"

ROUTE_HANGUP = "hangup"
ROUTE_CONTINUE = "continue"  # the refused call goes on, unrecorded

# --- Redis keys ---
REDIS_PREFIX = "pbxrec:"
REDIS_VIP_SET = REDIS_PREFIX + "vip"  # set of caller numbers (or their hashes) flagged VIP
REDIS_CLAIM_PREFIX = REDIS_PREFIX + "claim:"  # + recording_id: claim-once lease for the shipper
REDIS_SHIP_QUEUE = REDIS_PREFIX + "ship"  # list of recording ids waiting to be shipped
REDIS_LIVE_PREFIX = REDIS_PREFIX + "live:"  # + call_id: live call snapshot (optional mirror)

# --- call states (calls.py); spooled/stored/... belong to the pipeline ---
STATE_IDLE = "idle"
STATE_CONSENT_PENDING = "consent_pending"
STATE_WAITING_BRIDGE = "waiting_bridge"  # consent given, start_on=bridge, not bridged yet
STATE_RECORDING = "recording"
STATE_PAUSED = "paused"
STATE_STOPPED = "stopped"
STATE_FINALIZED = "finalized"
STATE_REFUSED = "refused"
STATE_NOT_RECORDED = "not_recorded"
STATE_ENDED = "ended"  # all channels gone, waiting for the CDR

# --- recording kinds and modes ---
KIND_CALL = "call"
KIND_CONSENT = "consent"
MODES = ("mixed", "dual", "stereo")

# --- consent outcomes that are the recorder's, not the caller's (calls.py, consent/) ---
CONSENT_FAILED = "failed"  # the dialogue broke on a live channel (prompt not played, no AGI reply)
CONSENT_CAPACITY = "capacity"  # the session was refused above pbx.agi.max_sessions
CONSENT_STOPPING = "stopping"  # the session was refused while the daemon stops
CONSENT_UNAVAILABLE = "unavailable"  # the snippet's fail direction ran and no session told us why
SYSTEM_CONSENT_OUTCOMES = (CONSENT_FAILED, CONSENT_CAPACITY, CONSENT_STOPPING, CONSENT_UNAVAILABLE)
FLAG_HANGUP_BEFORE_QUESTION = "hangup_before_question"  # the caller left before being asked
