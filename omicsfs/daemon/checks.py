"""Checks that run in the user's process before anything is mounted.

Each failure is one clear line and exit status 1 (``MountError``), instead of a daemon that
starts and then fails every request: the mount point, FUSE itself, credentials and the endpoint.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import botocore.exceptions
import botocore.session
import trio

from omicsfs.backend import retry
from omicsfs.backend.client import has_credentials, make_client, make_session
from omicsfs.backend.errors import AccessDenied, BackendError, TransportFailure
from omicsfs.backend.models import StoreKind
from omicsfs.backend.omics import OmicsBackend
from omicsfs.backend.stats import BackendStats
from omicsfs.config import MountConfig, RetryPolicy
from omicsfs.daemon.errors import MountError
from omicsfs.daemon.mounttable import FSTYPE, lazy_unmount, mount_table
from omicsfs.daemon.stores import resolve_stores
from omicsfs.fs.manifest import Manifest, ManifestError

if TYPE_CHECKING:
    from types_boto3_omics.client import OmicsClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where and how to reach HealthOmics."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    #: The S3 endpoint of the stores' access points: AWS's own by default; with a custom
    #: HealthOmics endpoint (the local service) only where given (its second endpoint).
    s3_endpoint_url: str | None = None

    @property
    def has_s3(self) -> bool:
        return self.endpoint_url is None or self.s3_endpoint_url is not None


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
#: Tries at connecting before the mount gives up on an endpoint. Throttling and 5xx are retried
#: with the mount's own policy (--retries), but an endpoint that refuses connections or does not
#: resolve is an answer: ten tries with backoff would keep the user waiting most of a minute.
CONNECT_ATTEMPTS = 2


class Unreachable(TransportFailure):
    """A probe that could not connect CONNECT_ATTEMPTS times: not retried further."""

    retryable = False


def check_endpoint_url(url: str | None) -> None:
    """botocore takes only absolute http(s) URLs (and says "Invalid endpoint" in a traceback)."""
    if url is None:
        return
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        hint = f" (did you mean http://{url}?)" if "://" not in url else ""
        raise MountError(f"--endpoint-url {url!r} is not an http:// or https:// URL{hint}")


def session_for(target: Target) -> boto3.session.Session:
    """The boto3 session of the standard AWS chain, or one line on what is wrong with it."""
    try:
        return make_session(region=target.region, profile=target.profile)
    except botocore.exceptions.ProfileNotFound as exc:
        profile = target.profile or os.environ.get("AWS_PROFILE", "")
        try:
            known = ", ".join(botocore.session.Session().available_profiles) or "none"
        except Exception:
            known = "unknown"
        raise MountError(
            f"AWS profile {profile!r} is not in ~/.aws/config or ~/.aws/credentials (profiles: {known})"
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise MountError(f"the AWS configuration cannot be used: {exc}") from exc


def client_for(session: boto3.session.Session, target: Target) -> OmicsClient:
    try:
        return make_client(session, endpoint_url=target.endpoint_url)
    except (ValueError, botocore.exceptions.BotoCoreError) as exc:
        raise MountError(f"cannot make a HealthOmics client: {exc}") from exc


def check_service(target: Target, config: MountConfig, *, probe: bool = True) -> MountConfig:
    """Credentials present and the endpoint answering (with ``probe``), and the store filters
    resolved from IDs or names (daemon/stores.py), before anything is mounted. Returns the
    configuration with store IDs. The probe is retried like every call (throttling, 5xx), with
    the mount's own retry policy, but gives up on an endpoint it cannot connect to after
    CONNECT_ATTEMPTS tries."""
    session = session_for(target)
    if probe and not has_credentials(session):
        raise MountError(
            "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,"
            " run 'aws configure', or attach an instance role)"
        )
    if session.region_name is None and target.endpoint_url is None:
        raise MountError("no AWS region configured (use --region or set AWS_REGION)")
    client = client_for(session, target)
    limits = config.limits
    stats = BackendStats()
    backend = OmicsBackend(client, limits, stats)
    # One attempt per probe call: the loop in _probe decides which failures to try again.
    single = OmicsBackend(client, dataclasses.replace(limits, retry=RetryPolicy(attempts=1)), stats)
    where = target.endpoint_url or f"HealthOmics in {session.region_name}"

    async def prepare() -> MountConfig:
        if probe:
            try:
                await _probe(single, limits.retry, stats)
            except AccessDenied as error:
                if error.code in _BAD_CREDENTIALS:
                    raise
                log.warning("listing sequence stores is not allowed (%s); mounting anyway", error.message)
        sequence = await resolve_stores(backend, StoreKind.SEQUENCE, config.sequence_store_ids)
        reference = await resolve_stores(backend, StoreKind.REFERENCE, config.reference_store_ids)
        return dataclasses.replace(config, sequence_store_ids=sequence, reference_store_ids=reference)

    try:
        return trio.run(prepare)
    except BackendError as error:
        if isinstance(error, TransportFailure):
            raise MountError(f"cannot reach {where}: {error.message}") from None
        if isinstance(error, AccessDenied) and error.code in _BAD_CREDENTIALS:
            raise MountError(f"{where} rejected the credentials: {error.message}") from None
        raise MountError(f"{where} failed: {error}") from None


def check_manifest(path: Path) -> None:
    """``--manifest``: a file this omicsfs can serve (its JSON, schema and version)."""
    try:
        Manifest.load(path)
    except ManifestError as exc:
        raise MountError(str(exc)) from None


def check_offline(target: Target) -> None:
    """A ``--manifest`` mount calls nothing before it serves (no probe, no store lookup), so the
    AWS configuration, credentials and region are checked without a call."""
    session = session_for(target)
    if not has_credentials(session):
        raise MountError(
            "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,"
            " run 'aws configure', or attach an instance role)"
        )
    if session.region_name is None and target.endpoint_url is None:
        raise MountError("no AWS region configured (use --region or set AWS_REGION)")


async def _probe(backend: OmicsBackend, policy: RetryPolicy, stats: BackendStats) -> None:
    failures = 0

    async def once() -> None:
        nonlocal failures
        try:
            await backend.probe()
        except TransportFailure as error:
            failures += 1
            if failures >= CONNECT_ATTEMPTS:
                raise Unreachable(error.operation, error.message, error.code) from error
            raise

    await retry.retrying(policy, stats, "ListSequenceStores", once)
