"""Test helpers: run ``omicsfs serve`` as a real process and talk to it with real boto3.

The service is started exactly as a user starts it; its first stdout line gives the endpoint.
Tests synchronise with background work through the admin ``drain`` route, never with sleeps.
"""

from __future__ import annotations

import io
import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

import boto3
from botocore.config import Config

from omicsfs.localservice.process import ServiceProcess

#: Credentials and region every test client and test mount uses; the local service accepts any.
TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-west-2",
}


class RunningService(ServiceProcess):
    """``omicsfs serve`` with test settings: small parts so small files span many parts."""

    def __init__(
        self, data_dir: Path, *extra: str, part_size: int = 65536, processing_delay: float = 0.05
    ) -> None:
        super().__init__(data_dir, *extra, part_size=part_size, processing_delay=processing_delay)
        self.s3_root = data_dir / "s3"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stops the service and closes its stdout pipe (its reader thread ends at EOF)."""
        code = super().stop(sig)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code

    def client(self, **config: Any) -> Any:
        return boto3.client(
            "omics",
            endpoint_url=self.url,
            region_name=TEST_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=TEST_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_ENV["AWS_SECRET_ACCESS_KEY"],
            config=Config(**{"inject_host_prefix": False, "retries": {"total_max_attempts": 1}, **config}),
        )

    def s3_client(self, **config: Any) -> Any:
        """boto3's s3 client on the service's S3 access endpoint, path-style, no retries."""
        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name=TEST_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=TEST_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_ENV["AWS_SECRET_ACCESS_KEY"],
            config=Config(
                **{"s3": {"addressing_style": "path"}, "retries": {"total_max_attempts": 1}, **config}
            ),
        )

    def admin(self, method: str, route: str, body: bytes | None = None) -> Any:
        """One admin call; an error status raises HTTPError with its body already read, so the
        connection is closed here and the test can still read the body."""
        request = urllib.request.Request(f"{self.url}/_omicsfs/{route}", data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            with error:
                payload = error.read()
            raise urllib.error.HTTPError(
                error.url, error.code, error.msg, error.headers, io.BytesIO(payload)
            ) from None

    def drain(self) -> None:
        self.admin("POST", "drain")

    def requests(self) -> dict[str, int]:
        return dict(self.admin("GET", "stats")["requests"])

    def connections(self) -> dict[str, int]:
        """Client connections seen per endpoint ("omics", "s3") since the last reset."""
        return dict(self.admin("GET", "stats")["connections"])

    def reset_stats(self) -> None:
        self.admin("POST", "stats/reset")

    def set_faults(self, spec: str) -> None:
        self.admin("PUT", "faults", spec.encode())


class PrivateStore(NamedTuple):
    """A service of the test's own and the ID of the one empty sequence store it holds."""

    service: RunningService
    store_id: str


def env_without_aws() -> dict[str, str]:
    """The test's environment without any AWS setting (a user with no AWS configuration)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def aws_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that talks to the local service: test credentials only,
    never the machine's own AWS settings."""
    return {**env_without_aws(), **TEST_ENV, **extra}
