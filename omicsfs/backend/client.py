"""Building the boto3 client from the standard AWS chain (or a custom endpoint).

With ``--endpoint-url``, botocore must not prepend the operations' host prefixes
(``control-storage-``/``storage-``), or it sends requests to ``control-storage-127.0.0.1``
(docs/architecture.md, "Talking to HealthOmics"). botocore's own retries are off:
backend/retry.py owns them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from types_boto3_omics.client import OmicsClient


def make_session(*, region: str | None = None, profile: str | None = None) -> boto3.session.Session:
    return boto3.session.Session(profile_name=profile, region_name=region)


def make_client(
    session: boto3.session.Session, *, endpoint_url: str | None = None, pool_connections: int = 32
) -> OmicsClient:
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=pool_connections,
        connect_timeout=10,
        read_timeout=90,  # dxfuse's per-IO bound; a stalled body is retried, resuming mid-part
        inject_host_prefix=endpoint_url is None,
        user_agent_extra="omicsfs",
    )
    # A local service does not care about the region, but botocore needs one to sign.
    region = session.region_name or ("us-east-1" if endpoint_url else None)
    client: OmicsClient = session.client(  # type: ignore[assignment,unused-ignore]
        "omics", endpoint_url=endpoint_url, region_name=region, config=config
    )
    return client


def has_credentials(session: boto3.session.Session) -> bool:
    """Whether the standard chain found credentials (the service rejects unsigned calls)."""
    return session.get_credentials() is not None
