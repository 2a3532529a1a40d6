"""Running the service as a process: bind, announce the endpoints, serve until a signal.

Both sockets are bound before uvicorn starts so that ``--port 0`` and ``--s3-port 0`` can be
resolved and printed: the first line of stdout is ``omicsfs local service listening on
http://127.0.0.1:PORT`` (the HealthOmics endpoint), the second ``omicsfs local S3 access
listening on http://127.0.0.1:PORT`` (the stores' S3 access subset, path-style); fixtures and
scripts read those lines instead of guessing ports. One uvicorn server serves both sockets; the
app tells them apart by the local port of each connection. uvicorn handles SIGINT/SIGTERM itself:
it stops accepting, finishes in-flight requests and runs the lifespan shutdown, which cancels
background work (a restart resumes it).
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from types import FrameType

import uvicorn

from omicsfs.localservice.app import LocalServiceApp
from omicsfs.localservice.connection import ServiceHttpProtocol
from omicsfs.localservice.context import Service, ServiceConfig
from omicsfs.localservice.faults import Faults

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGINT/SIGTERM after its graceful shutdown, which turns a clean
    stop into death-by-signal; a stop we asked for should exit 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        log.info("signal %d: shutting down", sig)
        self._captured_signals.clear()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def endpoint_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(
    config: ServiceConfig, host: str, port: int, faults: Faults, log_level: str, s3_port: int = 0
) -> int:
    sock = bind(host, port)
    s3_sock = bind(host, s3_port)
    url, s3_url = endpoint_url(sock), endpoint_url(s3_sock)
    s3_ports = frozenset({s3_sock.getsockname()[1]})
    app = LocalServiceApp(Service(config), faults, s3_ports=s3_ports)
    print(f"omicsfs local service listening on {url}", flush=True)
    print(f"omicsfs local S3 access listening on {s3_url}", flush=True)
    print(f"  data dir: {config.data_dir}  s3 root: {config.s3_root}", flush=True)
    uv_config = uvicorn.Config(
        app,
        log_level=log_level.lower(),
        access_log=False,
        lifespan="on",
        # One long GetReadSet must not starve the others: keep-alive.
        timeout_keep_alive=60,
        # httptools with a bounded request head and errors in the modeled shape (connection.py).
        http=ServiceHttpProtocol.serving(s3_ports),
    )
    server = _Server(uv_config)
    server.run(sockets=[sock, s3_sock])
    log.info("local service at %s stopped", url)
    return 0


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "omicsfs" / "service"
