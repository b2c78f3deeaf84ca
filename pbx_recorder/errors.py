"""The one exception hierarchy of pbx-recorder.

Every error raised on purpose by this application derives from ``RecorderError``.
Third-party errors (panoramisk, boto3, sqlite3, redis, cryptography, OSError) are
translated at the edge with ``raise SomeRecorderError(...) from exc``.  Each class
carries the exit code the CLI returns for it.

    RecorderError                      exit 1   anything unexpected but ours
    ├── ConfigError                    exit 2   bad config: names the file and the key
    ├── PbxError                       exit 3   the PBX side
    │   ├── AmiProtocolError                    a malformed AMI frame
    │   ├── AmiActionError                      an AMI action answered Error
    │   ├── PbxDisconnected                     the connection went away (pending actions fail with it)
    │   └── EslError                            FreeSWITCH event socket problems
    ├── StorageError                   exit 4   a tier could not read/write
    │   ├── TierUnavailable                     endpoint/disk unreachable: retry later (transient)
    │   ├── StorageRefused                      the server refused for good (a 4xx): fix, don't retry
    │   ├── IntegrityError                      hash or signature mismatch
    │   ├── ObjectNotRestored                   cold object must be restored first
    │   └── SpoolFull                           no room on the spool disk
    ├── PolicyRefusal                  exit 5   a hold / retention / lock forbids the operation
    ├── CatalogError                   exit 6
    │   ├── CallIdCollision                     a call id already holds another call's row
    │   └── NotFound                            no such call / recording
    ├── AccessDenied                   exit 7   the role may not do this
    │   └── LoginRefused                        wrong name or password, disabled or locked account
    ├── CryptoError                    exit 8   decryption / key problems
    │   └── ObjectRoleMismatch                  an envelope of another object of the recording (swapped in)
    ├── VerifyIncomplete               exit 9   verify found no mismatch but could not reach a tier
    ├── ReportMailError                exit 1   a produced report could not be mailed (SMTP)
    ├── AsteriskCheckFailed            exit 1   `asterisk check` found errors in the Asterisk config
    └── ShutdownRequested              exit 0   cooperative stop (not an error for the CLI)
"""

from __future__ import annotations


class RecorderError(Exception):
    exit_code = 1

    def __init__(self, message: str, *, call_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.call_id = call_id

    def __str__(self) -> str:
        if self.call_id:
            return f"{self.message} (call {self.call_id})"
        return self.message


class ConfigError(RecorderError):
    """A configuration problem.  ``file`` and ``key`` say where."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = []
        if file:
            where.append(str(file))
        if key:
            where.append(key)
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class PbxError(RecorderError):
    exit_code = 3


class AmiProtocolError(PbxError):
    pass


class AmiActionError(PbxError):
    def __init__(self, message: str, *, action: str | None = None, call_id: str | None = None) -> None:
        self.action = action
        super().__init__(message, call_id=call_id)


class PbxDisconnected(PbxError):
    pass


class EslError(PbxError):
    pass


class StorageError(RecorderError):
    exit_code = 4


class TierUnavailable(StorageError):
    pass


class StorageRefused(StorageError):
    """A permanent refusal by the storage server (an S3 4xx such as InvalidArgument, AccessDenied,
    InvalidStorageClass): the same request will be refused again, so it is not retried."""


class IntegrityError(StorageError):
    pass


class ObjectNotRestored(StorageError):
    pass


class SpoolFull(StorageError):
    pass


class PolicyRefusal(RecorderError):
    """An operation refused because of a legal hold, retention lock or protection flag."""

    exit_code = 5


class PauseRefused(PolicyRefusal):
    """A PCI pause or resume the PBX may not carry out on the recorder's MixMonitor
    (core/mixmonitor_order.py); ``reason`` names why."""

    def __init__(self, message: str, *, reason: str, call_id: str | None = None) -> None:
        super().__init__(message, call_id=call_id)
        self.reason = reason


class CatalogError(RecorderError):
    exit_code = 6


class NotFound(CatalogError):
    pass


class CallIdCollision(CatalogError):
    """Another call already holds this call id: its row is kept, the newer one refused."""


class PreparedMismatch(CatalogError):
    """A result a helper process prepared for a bulk write (``recording.sign_ahead``) is not what
    the writer makes of the same call when it checks one: the batch is rolled back and written
    again by the writer alone."""


class AccessDenied(RecorderError):
    exit_code = 7


class LoginRefused(AccessDenied):
    """A login that did not succeed; ``reason`` (unknown | password | disabled | locked) goes to the
    audit log only: the client is told the same thing whatever it is."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CryptoError(RecorderError):
    exit_code = 8


class ObjectRoleMismatch(CryptoError):
    """An envelope that belongs to this recording but to another of its objects (a leg, the
    manifest, a kept original) than the one the reader asked for: an object swapped in its
    place.  Never played, reported as tampering by ``verify``."""


class VerifyIncomplete(RecorderError):
    """``verify``: nothing was found wrong, but a tier could not be reached (outage), so not
    everything was checked.  Distinct from IntegrityError (exit 4): an outage is not tampering."""

    exit_code = 9


class ShutdownRequested(RecorderError):
    exit_code = 0


class AsteriskCheckFailed(RecorderError):
    """``pbx-recorder asterisk check`` found errors (printed as findings before this is raised)."""


class ReportMailError(RecorderError):
    """A produced report could not be mailed (``web.reports.smtp``); the report itself is kept."""
