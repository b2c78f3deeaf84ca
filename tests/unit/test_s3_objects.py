"""Pure parts of the S3 tier: keys, metadata, restore header, hashing reader, error mapping."""

import base64
import hashlib
import io

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from pbx_recorder.errors import (
    IntegrityError,
    NotFound,
    ObjectNotRestored,
    PolicyRefusal,
    StorageError,
    StorageRefused,
    TierUnavailable,
)
from storage.s3_errors import is_transient, translate
from storage.s3_objects import (
    ChainedReader,
    PartHashingReader,
    check_key,
    decode_metadata,
    encode_metadata,
    read_up_to,
    restore_state,
)


def test_keys() -> None:
    assert check_key("2026/11/21/a b ü.wav") == "2026/11/21/a b ü.wav"
    for bad in ("", "/a", "a/../b", "a//b", "./a", "a\x00", "a\\b", "é" * 600):
        with pytest.raises(StorageError):
            check_key(bad)


def test_metadata_round_trip() -> None:
    meta = encode_metadata({"call_id": "pbx1_1.2", "Recording_ID": "r1", "note": "café"})
    assert meta["call-id"] == "pbx1_1.2" and meta["recording-id"] == "r1"
    assert meta["note"].isascii()
    assert decode_metadata(meta)["note"] == "café"


def test_restore_header() -> None:
    assert restore_state(None) == ""
    assert restore_state('ongoing-request="true"') == "in_progress"
    assert restore_state('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"') == "done"


class Trickle(io.RawIOBase):
    """Returns at most 3 bytes per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.buf.read(min(n, 3) if n >= 0 else 3)


def test_read_up_to_and_chained_hashing_reader() -> None:
    data = bytes(range(256)) * 100  # 25600 bytes
    head = read_up_to(Trickle(data), 10_000)  # type: ignore[arg-type]
    assert head == data[:10_000]
    reader = PartHashingReader(ChainedReader(data[:10_000], io.BytesIO(data[10_000:])), part_size=8192)
    got = b"".join(iter(lambda: reader.read(5000), b""))
    assert got == data and reader.hexdigest() == hashlib.sha256(data).hexdigest()
    parts = [hashlib.sha256(data[i:i + 8192]).digest() for i in range(0, len(data), 8192)]
    expected = base64.b64encode(hashlib.sha256(b"".join(parts)).digest()).decode() + f"-{len(parts)}"
    assert reader.composite_b64() == expected


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(("exc", "cls"), [
    (client_error("NoSuchKey", 404), NotFound), (client_error("", 404), NotFound),
    (client_error("InvalidObjectState", 403), ObjectNotRestored),
    (client_error("SlowDown", 503), TierUnavailable), (client_error("InternalError", 500), TierUnavailable),
    (client_error("BadDigest", 400), IntegrityError), (client_error("ObjectLocked", 400), PolicyRefusal),
    (client_error("AccessDenied", 403), StorageRefused),
    (client_error("InvalidArgument", 400), StorageRefused),
    (client_error("InvalidStorageClass", 400), StorageRefused),
    (client_error("NoSuchBucket", 404), StorageRefused),
    (client_error("RequestTimeout", 400), TierUnavailable),
    (client_error("TooManyRequests", 429), TierUnavailable),
    (client_error("", 429), TierUnavailable), (client_error("", 502), TierUnavailable),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), TierUnavailable),
])
def test_error_translation(exc: Exception, cls: type) -> None:
    err = translate(exc, "get", "k.wav", "s3")
    assert type(err) is cls
    assert "k.wav" in str(err) and "Traceback" not in str(err)


def test_a_permanent_refusal_without_a_server_message_says_what_was_asked() -> None:
    exc = ClientError({"Error": {"Code": "InvalidArgument", "Message": ""},
                       "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutObject")
    err = translate(exc, "upload", "k.wav", "s3", asked="ServerSideEncryption=AES256")
    assert isinstance(err, StorageRefused) and "not retried" in str(err)
    assert "InvalidArgument (HTTP 400): the server sent no message" in str(err)
    assert "asked for ServerSideEncryption=AES256" in str(err)
    assert is_transient(client_error("SlowDown", 503)) and not is_transient(exc)
