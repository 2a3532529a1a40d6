"""The local service as a part of a mount (``omicsfs mount --local``, ``omicsfs demo``).

The service is a child of the mounting process and lives exactly as long as the mount: it is
started before mounting and stopped after unmounting, and if it dies first the mount must not
stay up silently answering EIO, so its death is logged and turned into SIGTERM to ourselves,
which the mount's own signal handling turns into a clean unmount. If the mounting process is
killed outright, the kernel stops the service (``ServiceProcess(owned=True)``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import TracebackType
from typing import IO

from omicsfs.localservice.process import ServiceProcess

log = logging.getLogger(__name__)

#: Any key is accepted by the local service; boto3 only needs something to sign with.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
LOCAL_REGION = "us-east-1"


def use_local_credentials() -> None:
    """Points this process's AWS chain at dummy keys, so no real profile or token is picked up
    (or sent) when talking to a local service."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ.setdefault("AWS_DEFAULT_REGION", LOCAL_REGION)


class ServiceStartError(Exception):
    """The service child did not announce its endpoint."""


class OwnedService:
    """``omicsfs serve`` on a private loopback port; ``url`` is its endpoint.

    ``died`` is the exit status when the service ended without being asked to (None otherwise).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        processing_delay: float = 0.2,
        log_level: str = "WARNING",
        stderr: IO[str] | None = None,
    ) -> None:
        try:
            self._service = ServiceProcess(
                data_dir, processing_delay=processing_delay, log_level=log_level, owned=True, stderr=stderr
            )
        except RuntimeError as exc:
            raise ServiceStartError(f"the local service in {data_dir} did not start: {exc}") from None
        self.url = self._service.url
        self.s3_url = self._service.s3_url
        self.pid = self._service.process.pid
        self.data_dir = data_dir
        self.died: int | None = None
        self._stopping = threading.Event()
        threading.Thread(target=self._watch, name="service-watch", daemon=True).start()
        log.info("local service for %s at %s (pid %d)", data_dir, self.url, self.pid)

    def _watch(self) -> None:
        code = self._service.process.wait()
        if self._stopping.is_set():
            return
        self.died = code
        log.error("the local service for %s exited with status %d; unmounting", self.data_dir, code)
        os.kill(os.getpid(), signal.SIGTERM)

    def stop(self) -> int:
        """Stops the service (SIGTERM, a clean shutdown) and returns its exit status."""
        self._stopping.set()
        return self._service.stop()

    def __enter__(self) -> OwnedService:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
