"""Where the daemon's log lines go, and which libraries may speak.

The log holds the explanations users need (an archived read set and the command that activates
it, a refused name, an IAM denial), so a detached daemon must never log into nothing. Its
destination is decided in the user's process, before the daemon starts, so ``omicsfs mount`` can
say where it is:
- ``--log-file F``: that file;
- else syslog (journald) when ``/dev/log`` accepts datagrams;
- else (most containers have no syslog) a file under the user's XDG state dir:
  ``$XDG_STATE_HOME/omicsfs/`` or ``~/.local/state/omicsfs/``, one per mount point
  (https://specifications.freedesktop.org/basedir-spec/latest/, "state data ... logs").
In the foreground (systemd, tests) the daemon logs to stderr, where systemd's journal picks it up.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SYSLOG_SOCKET = "/dev/log"
#: The syslog identifier: ``journalctl -t omicsfs`` shows the daemon's lines.
SYSLOG_IDENT = "omicsfs"


@dataclass(frozen=True)
class LogDestination:
    """Where a detached daemon logs: syslog, or a file (``path``)."""

    path: Path | None = None

    @property
    def syslog(self) -> bool:
        return self.path is None

    def describe(self) -> str:
        if self.path is None:
            return f"syslog (journalctl -t {SYSLOG_IDENT})"
        return str(self.path)


def syslog_available(address: str = SYSLOG_SOCKET) -> bool:
    """Whether a syslog daemon (or journald) takes datagrams at ``address``: the socket may be
    missing, or left behind by a syslog that is not running."""
    if not os.path.exists(address):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as probe:
            probe.connect(address)
    except OSError:
        return False
    return True


def state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/omicsfs``, or ``~/.local/state/omicsfs`` when it is unset or relative
    (the XDG spec says to ignore a relative one)."""
    base = env.get("XDG_STATE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return root / "omicsfs"


def log_file_name(mountpoint: str) -> str:
    """``/mnt/omics`` -> ``mnt-omics.log``: one file per mount point, named like systemd's units."""
    return (mountpoint.strip("/").replace("/", "-") or "root") + ".log"


def choose_destination(
    log_file: str | None, mountpoint: str, *, syslog_socket: str = SYSLOG_SOCKET,
    env: Mapping[str, str] = os.environ,
) -> LogDestination:  # fmt: skip
    if log_file:
        return LogDestination(Path(log_file).absolute())
    if syslog_available(syslog_socket):
        return LogDestination()
    return LogDestination(state_dir(env) / log_file_name(mountpoint))


def open_log_file(path: Path) -> int:
    """The log file for the daemon's stderr, appended to; it may name read sets and samples, so
    it is private (0600) in a private folder when omicsfs makes them."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def configure_logging(level: str, *, syslog: bool = False) -> None:
    handler: logging.Handler | None = None
    if syslog:
        try:
            handler = logging.handlers.SysLogHandler(address=SYSLOG_SOCKET)
        except OSError:  # syslog went away between the check and now: stderr, as in the foreground
            handler = None
        else:
            handler.setFormatter(
                logging.Formatter(f"{SYSLOG_IDENT}[%(process)d]: %(levelname)s %(name)s: %(message)s")
            )
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    quiet_libraries()


def quiet_libraries() -> None:
    """botocore's DEBUG output holds request bodies (file contents) and signing details, and its
    INFO lines ("Found credentials in environment variables.") are noise in a terminal: only
    their warnings get through, whatever --log-level says. The daemon logs which credentials
    it uses itself (run.py)."""
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(name).setLevel(logging.WARNING)
