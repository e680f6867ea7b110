"""The attachments' section of the settings, declared like those of ``sections.py`` (which it
would push past the house's module size): encrypted attachments' limits, URL lifetimes, the
sweep, and the blob store (embedded folder or S3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hub.settings.variables import parse_optional, setting


@dataclass(frozen=True, slots=True)
class AttachmentSettings:
    """Encrypted attachments: limits, URL lifetimes, the sweep, and where the bytes live (a
    folder of this machine, or an S3-compatible bucket when ``S3_BUCKET`` is set)."""

    max_bytes: int = setting(
        "MAX_ATTACHMENT_BYTES", 100 * 1024 * 1024, "largest attachment (bytes)", minimum=1
    )
    bytes_per_day: int = setting(
        "ATTACHMENT_BYTES_PER_DAY",
        1024**3,
        "bytes one user may reserve for uploads in any 24 hours (`rate_limited` past it; "
        "deleting gives none back)",
        minimum=1,
    )
    url_seconds: int = setting(
        "ATTACHMENT_URL_SECONDS", 300, "how long a download URL works", minimum=1
    )
    upload_url_seconds: int = setting(
        "ATTACHMENT_UPLOAD_URL_SECONDS",
        3600,
        "how long an upload URL works (a 100 MiB upload on a phone network takes a while)",
        minimum=1,
    )
    unbound_seconds: int = setting(
        "ATTACHMENT_UNBOUND_SECONDS",
        86_400,
        "an upload not bound to a message within this is removed by the sweep",
        minimum=1,
    )
    sweep_seconds: int = setting(
        "ATTACHMENT_SWEEP_SECONDS",
        60,
        "how often one node (a Redis lease) removes unbound uploads and deleted messages' "
        "attachments",
        minimum=1,
    )
    folder: Path | None = setting(
        "ATTACHMENT_DIR",
        None,
        "the embedded store's folder (no `S3_BUCKET`); nodes must share it",
        shown="`<data>/attachments`",
        parse=lambda _name, raw: Path(raw) if raw else None,
    )
    s3_bucket: str | None = setting(
        "S3_BUCKET",
        None,
        "store attachments in this S3 bucket (presigned URLs; the bytes never pass the hub)",
        shown="unset: embedded store",
        parse=parse_optional,
    )
    s3_endpoint_url: str | None = setting(
        "S3_ENDPOINT_URL",
        None,
        "an S3-compatible endpoint (MinIO, R2, a local fake in tests)",
        shown="AWS",
        parse=parse_optional,
    )
    s3_region: str = setting("S3_REGION", "us-east-1", "the bucket's region")
    aws_access_key_id: str | None = setting(
        "AWS_ACCESS_KEY_ID",
        None,
        "S3 credentials (with `AWS_SECRET_ACCESS_KEY`)",
        shown="unset",
        parse=parse_optional,
    )
    aws_secret_access_key: str | None = setting(
        "AWS_SECRET_ACCESS_KEY",
        None,
        "…the secret; never logged",
        shown="unset",
        parse=parse_optional,
    )
