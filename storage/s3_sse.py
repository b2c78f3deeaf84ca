"""Server-side encryption settings of an S3 tier and the request arguments they imply.

* ``AES256``  (SSE-S3): the server manages the key.
* ``aws:kms`` (SSE-KMS): ``kms_key_id`` names the key.
* SSE-C: ``customer_key`` (32 raw bytes) is sent with every write AND every read/head/copy
  of the object; boto3 base64-encodes it and adds the MD5.  Never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pbx_recorder.errors import ConfigError

MODES = ("", "AES256", "aws:kms", "SSE-C")


@dataclass(frozen=True)
class SseConfig:
    mode: str = ""  # "" | "AES256" | "aws:kms" | "SSE-C"
    kms_key_id: str = ""
    customer_key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown SSE mode {self.mode!r} (one of: AES256, aws:kms, SSE-C)", key="sse")
        if self.mode == "SSE-C" and len(self.customer_key) != 32:
            raise ConfigError("SSE-C needs a 32-byte customer key", key="sse_customer_key")
        if self.mode == "aws:kms" and not self.kms_key_id:
            raise ConfigError("SSE-KMS needs kms_key_id", key="kms_key_id")

    def write_args(self) -> dict[str, Any]:
        """Arguments for put_object / create_multipart_upload / copy_object (destination)."""
        if self.mode == "AES256":
            return {"ServerSideEncryption": "AES256"}
        if self.mode == "aws:kms":
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        if self.mode == "SSE-C":
            return self.read_args()
        return {}

    def read_args(self) -> dict[str, Any]:
        """Arguments for get_object / head_object (only SSE-C needs any)."""
        if self.mode == "SSE-C":
            return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": self.customer_key}
        return {}

    def copy_source_args(self) -> dict[str, Any]:
        if self.mode == "SSE-C":
            return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": self.customer_key}
        return {}

    @property
    def label(self) -> str:
        return self.mode or "none"
