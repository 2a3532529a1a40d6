"""systemd's readiness protocol (sd_notify), so ``Type=notify`` units start when the mount is live.

systemd passes a datagram socket in ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract
namespace); ``READY=1`` sent there tells it the service has started, so ``systemctl start``
returns, and units ordered after it start, only once the folder is mounted. Without the variable
(not under systemd) nothing happens. No dependency on libsystemd: the protocol is one datagram.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Sends ``message`` (e.g. ``READY=1``) to systemd; False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("could not notify systemd at %s: %s", address.lstrip("\0"), exc)
        return False
    return True
