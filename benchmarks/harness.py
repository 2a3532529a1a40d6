"""What the benchmark scripts share: the local service and a mount as child processes, and data.

``Service`` runs ``omicsfs serve`` (``--processing-delay 0``) with a boto3 client for it and its
admin routes; ``Mount`` runs ``omicsfs mount MNT --endpoint-url URL --foreground`` and waits for
its "omicsfs is mounted at" log line (no polling); ``write_copies`` writes a multi-member gzip.
Each script runs as ``python benchmarks/NAME.py``, which puts this folder on ``sys.path``.
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
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from omicsfs.daemon.mounttable import mount_table
from omicsfs.localservice.process import ServiceProcess

MIB = 1 << 20
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-west-2",
}
MOUNTED_LINE = "omicsfs is mounted at"


def log(message: str) -> None:
    print(message, flush=True)


# -- the service ---------------------------------------------------------------------------------


class Service:
    """``omicsfs serve`` as a child process, a boto3 client for it and its admin routes."""

    def __init__(self, data_dir: Path, part_size: int, faults: str = "") -> None:
        self.data_dir = data_dir
        self.s3_root = data_dir / "s3"
        self.part_size = part_size
        extra = ("--faults", faults) if faults else ()
        self.child = ServiceProcess(data_dir, *extra, part_size=part_size, processing_delay=0)
        self.url = self.child.url
        self.s3_url = self.child.s3_url
        parsed = urlsplit(self.url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80

    def client(self, pool: int = 10) -> Any:
        return boto3.client(
            "omics",
            endpoint_url=self.url,
            region_name="us-west-2",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(
                inject_host_prefix=False,
                retries={"total_max_attempts": 1},
                max_pool_connections=pool,
                read_timeout=300,
            ),
        )

    def admin(self, method: str, route: str) -> Any:
        request = urllib.request.Request(f"{self.url}/_omicsfs/{route}", method=method)
        with urllib.request.urlopen(request, timeout=900) as response:
            return json.load(response)

    def drain(self) -> None:
        self.admin("POST", "drain")

    def requests(self) -> dict[str, int]:
        return {op: n for op, n in self.admin("GET", "stats")["requests"].items() if n}

    def reset_stats(self) -> None:
        self.admin("POST", "stats/reset")

    def set_faults(self, spec: str) -> None:
        request = urllib.request.Request(f"{self.url}/_omicsfs/faults", data=spec.encode(), method="PUT")
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    def stop(self) -> None:
        self.child.stop()


# -- the mount -----------------------------------------------------------------------------------


def aws_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENV)
    return env


class Mount:
    """``omicsfs mount MNT --endpoint-url URL --foreground`` as a child; ``path`` is the mount root."""

    def __init__(
        self, mountpoint: Path, url: str, *extra: str, metadata_tps: float | None = 1000,
        pythonpath: Path | None = None,
    ) -> None:  # fmt: skip
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.path = mountpoint
        tps = [] if metadata_tps is None else ["--metadata-tps", f"{metadata_tps:g}"]
        args = [sys.executable, "-m", "omicsfs", "mount", str(mountpoint), "--endpoint-url", url,
                "--foreground", *tps, *extra]  # fmt: skip
        self.args = args
        self.lines: list[str] = []
        self._ready = threading.Event()
        env = aws_env()
        if pythonpath is not None:  # another checkout of omicsfs, for before/after comparisons
            env["PYTHONPATH"] = str(pythonpath)
        # ``python -m`` puts the working folder first on sys.path: run another checkout from its own.
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=env, cwd=pythonpath,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._ready.wait(120) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("omicsfs mount did not come up:\n" + "".join(self.lines[-30:]))

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if MOUNTED_LINE in line:
                self._ready.set()
        self._ready.set()  # EOF: the daemon is gone; __init__ notices

    @property
    def pid(self) -> int:
        return self.process.pid

    def problems(self) -> list[str]:
        return [line.rstrip() for line in self.lines if " WARNING " in line or " ERROR " in line]

    def status_kib(self, field_name: str) -> int:
        """A ``VmXXX`` field of the daemon's /proc/PID/status, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field_name} in /proc/{self.pid}/status")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)
        if mount_table().get(str(self.path)) is not None:
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], check=False, capture_output=True)
        return self.process.returncode


def write_copies(path: Path, member: bytes, copies: int) -> int:
    """``copies`` concatenated gzip members (valid multi-member gzip); returns the file size."""
    with open(path, "wb") as out:
        for _ in range(copies):
            out.write(member)
        # Flushed now so that write-back does not compete with the timed runs; it stays cached.
        out.flush()
        os.fsync(out.fileno())
    return copies * len(member)
