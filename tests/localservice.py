"""Test helpers: run ``omicsfs serve`` as a real process and talk to it with real boto3.

The service is started exactly as a user starts it; its first stdout line gives the endpoint.
Tests synchronise with background work through the admin ``drain`` route, never with sleeps.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from omicsfs.localservice.process import ServiceProcess


class RunningService(ServiceProcess):
    """``omicsfs serve`` with test settings: small parts so small files span many parts."""

    def __init__(
        self, data_dir: Path, *extra: str, part_size: int = 65536, processing_delay: float = 0.05
    ) -> None:
        super().__init__(data_dir, *extra, part_size=part_size, processing_delay=processing_delay)
        self.s3_root = data_dir / "s3"

    def client(self, **config: Any) -> Any:
        return boto3.client(
            "omics",
            endpoint_url=self.url,
            region_name="us-west-2",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(**{"inject_host_prefix": False, "retries": {"total_max_attempts": 1}, **config}),
        )

    def s3_client(self, **config: Any) -> Any:
        """boto3's s3 client on the service's S3 access endpoint, path-style, no retries."""
        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name="us-west-2",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(
                **{"s3": {"addressing_style": "path"}, "retries": {"total_max_attempts": 1}, **config}
            ),
        )

    def admin(self, method: str, route: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(f"{self.url}/_omicsfs/{route}", data=body, method=method)
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)

    def drain(self) -> None:
        self.admin("POST", "drain")

    def requests(self) -> dict[str, int]:
        return dict(self.admin("GET", "stats")["requests"])

    def reset_stats(self) -> None:
        self.admin("POST", "stats/reset")

    def set_faults(self, spec: str) -> None:
        self.admin("PUT", "faults", spec.encode())


def env_without_aws() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
