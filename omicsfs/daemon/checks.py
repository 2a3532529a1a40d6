"""Checks that run in the user's process before anything is mounted.

Each failure is one clear line and exit status 1 (``MountError``), instead of a daemon that
starts and then fails every request: the mount point, FUSE itself, credentials and the endpoint.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import trio

from omicsfs.backend.client import has_credentials, make_client, make_session
from omicsfs.backend.errors import AccessDenied, BackendError, TransportFailure
from omicsfs.backend.omics import OmicsBackend
from omicsfs.backend.stats import BackendStats
from omicsfs.config import BackendLimits
from omicsfs.daemon.mounttable import FSTYPE, lazy_unmount, mount_table

log = logging.getLogger(__name__)


class MountError(Exception):
    """A reason the mount cannot start, worded for the user (printed as one line)."""


@dataclass(frozen=True)
class Target:
    """Where and how to reach HealthOmics."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


def check_mountpoint(mountpoint: Path, *, nonempty: bool = False) -> None:
    """Missing, not a folder, already mounted, stale or not empty: each a clear MountError.

    A stale omicsfs mount (its daemon died; every access says "Transport endpoint is not
    connected") is cleared with a lazy unmount and the mount goes ahead. It is probed with a
    listing, not a stat: the kernel may answer a stat of a dead mount from its attribute cache.
    """
    point = str(mountpoint)
    fstype = mount_table().get(point)
    if fstype is not None:
        try:
            os.listdir(point)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise MountError(f"mount point {point}: {exc.strerror}") from None
            if fstype != FSTYPE:
                raise MountError(
                    f"{point} is a dead FUSE mount ({fstype}); clear it with: fusermount3 -u -z {point}"
                ) from None
            log.warning("%s is a stale omicsfs mount (its daemon died); unmounting it first", point)
            lazy_unmount(point)
        else:
            if fstype == FSTYPE:
                raise MountError(f"{point} is already an omicsfs mount (unmount it: omicsfs unmount {point})")
    try:
        os.stat(point)
    except FileNotFoundError:
        raise MountError(f"mount point {point} does not exist (create it with: mkdir -p {point})") from None
    except OSError as exc:
        raise MountError(f"mount point {point}: {exc.strerror}") from None
    if not os.path.isdir(point):
        raise MountError(f"mount point {point} is not a folder")
    if not nonempty and os.listdir(point):
        raise MountError(f"mount point {point} is not empty (use an empty folder, or -o nonempty)")


def check_fuse(
    allow_other: bool, fuse_conf: Path = Path("/etc/fuse.conf"), *, uid: int | None = None
) -> None:
    """FUSE usable by ``uid`` (default: this process's user)."""
    uid = os.getuid() if uid is None else uid
    if not os.path.exists("/dev/fuse"):
        raise MountError("FUSE is not available: /dev/fuse is missing (load the fuse module: modprobe fuse)")
    if uid != 0 and shutil.which("fusermount3") is None:
        raise MountError("FUSE is not available: fusermount3 is missing (install the fuse3 package)")
    if allow_other and uid != 0 and not user_allow_other(fuse_conf):
        raise MountError(
            f"--allow-other needs 'user_allow_other' in {fuse_conf} when not mounting as root"
            " (add that line, or mount without --allow-other)"
        )


def user_allow_other(fuse_conf: Path) -> bool:
    try:
        lines = fuse_conf.read_text().splitlines()
    except OSError:
        return False
    return any(line.split("#", 1)[0].strip() == "user_allow_other" for line in lines)


_BAD_CREDENTIALS = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "NoCredentials"}
)


def check_service(target: Target, limits: BackendLimits) -> None:
    """Credentials present and the endpoint answering, before anything is mounted. The probe is
    retried like every call (throttling, 5xx), with the mount's own retry policy."""
    session = make_session(region=target.region, profile=target.profile)
    if not has_credentials(session):
        raise MountError(
            "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,"
            " run 'aws configure', or attach an instance role)"
        )
    if session.region_name is None and target.endpoint_url is None:
        raise MountError("no AWS region configured (use --region or set AWS_REGION)")
    backend = OmicsBackend(make_client(session, endpoint_url=target.endpoint_url), limits, BackendStats())
    try:
        trio.run(backend.probe)
    except BackendError as error:
        where = target.endpoint_url or f"HealthOmics in {session.region_name}"
        if isinstance(error, TransportFailure):
            raise MountError(f"cannot reach {where}: {error.message}") from None
        if isinstance(error, AccessDenied) and error.code in _BAD_CREDENTIALS:
            raise MountError(f"{where} rejected the credentials: {error.message}") from None
        if isinstance(error, AccessDenied):
            log.warning("listing sequence stores is not allowed (%s); mounting anyway", error.message)
            return
        raise MountError(f"{where} failed: {error}") from None
