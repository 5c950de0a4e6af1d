"""Helpers for the S3 storage (django-storages `S3Storage`) beyond what the library offers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage


def probe_client(storage: S3Storage, *, timeout_seconds: float):
    """A client with the storage's endpoint and keys but short timeouts and no retries.

    The storage's own client waits a minute per attempt and retries, which would make a boot
    check against an unreachable endpoint hang for minutes instead of failing with a message.
    """
    return boto3.session.Session().client(
        "s3",
        endpoint_url=storage.endpoint_url,
        region_name=storage.region_name,
        aws_access_key_id=storage.access_key or None,
        aws_secret_access_key=storage.secret_key or None,
        config=Config(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": storage.addressing_style or "path"},
        ),
    )


def check_bucket(storage: S3Storage, *, timeout_seconds: float = 2.0) -> None:
    """Raise (any botocore error) unless the bucket exists and the keys may read it."""
    probe_client(storage, timeout_seconds=timeout_seconds).head_bucket(Bucket=storage.bucket_name)
