"""Test helpers: run ``omicsfs serve`` as a real process and talk to it with real boto3.

The service is started exactly as a user starts it; its first stdout line gives the endpoint.
Tests synchronise with background work through the admin ``drain`` route, never with sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config


class RunningService:
    def __init__(self, data_dir: Path, *extra: str, part_size: int = 65536) -> None:
        self.data_dir = data_dir
        self.s3_root = data_dir / "s3"
        args = [
            sys.executable, "-m", "omicsfs", "serve", "--data-dir", str(data_dir), "--port", "0",
            "--part-size", str(part_size), "--processing-delay", "0.05", "--log-level", "WARNING",
            *extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if "http://" not in first:
            self.process.kill()
            raise RuntimeError(f"service did not start: {first!r}")
        self.url = first.split()[-1]
        # Keep reading stdout so the service can never block on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def client(self, **config: Any) -> Any:
        return boto3.client(
            "omics",
            endpoint_url=self.url,
            region_name="us-west-2",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(**{"inject_host_prefix": False, "retries": {"total_max_attempts": 1}, **config}),
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

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def env_without_aws() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
