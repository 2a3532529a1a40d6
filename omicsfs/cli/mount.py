"""``omicsfs mount`` and ``omicsfs unmount``: from command-line flags to a running mount.

Flags left out keep their config defaults (omicsfs/config.py): the parser's own default for
every tunable is None, and only the flags given are passed to the dataclasses.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from omicsfs.cli.options import LOG_LEVELS, default_help, group_id, size, user_id
from omicsfs.config import (
    BackendLimits,
    CacheConfig,
    DaemonConfig,
    DataPlane,
    MountConfig,
    RetryPolicy,
    WriteConfig,
)
from omicsfs.daemon.cachedir import prepare_cache_dir
from omicsfs.daemon.checks import (
    Target,
    check_endpoint_url,
    check_fuse,
    check_manifest,
    check_mountpoint,
    check_offline,
    check_service,
)
from omicsfs.daemon.detach import start_daemon
from omicsfs.daemon.errors import MountError
from omicsfs.daemon.logs import LogDestination, choose_destination, configure_logging
from omicsfs.daemon.mounttable import UnmountError
from omicsfs.daemon.run import fuse_options, run_foreground
from omicsfs.daemon.stop import unmount_or_stop
from omicsfs.fs.write.manager import MAX_NAME


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mount = commands.add_parser("mount", help="mount HealthOmics stores as folders")
    add_mount_arguments(mount)
    unmount_parser = commands.add_parser("unmount", help="unmount an omicsfs mount")
    unmount_parser.add_argument("mountpoint", type=Path)


def add_mount_arguments(mount: argparse.ArgumentParser) -> None:
    mount.add_argument("mountpoint", type=Path, help="an empty folder")
    mount.add_argument("--endpoint-url", help="service URL (a local service); turns host prefixes off")
    mount.add_argument(
        "--s3-endpoint-url", help="S3 endpoint of the stores' access points (the local service's second URL)"
    )
    mount.add_argument(
        "--data-plane", choices=[plane.value for plane in DataPlane], type=DataPlane,
        help=default_help("where file bytes come from: S3 ranged GETs where they work (auto), parts only, "
                          "or S3", MountConfig, "data_plane"),
    )  # fmt: skip
    mount.add_argument(
        "--local", type=Path, metavar="DATA_DIR", help="serve this local data dir privately while mounted"
    )
    mount.add_argument("--region", help="AWS region (default: the standard AWS chain)")
    mount.add_argument("--profile", help="AWS profile (default: the standard AWS chain)")
    mount.add_argument(
        "-f", "--foreground", action="store_true", help="stay in the foreground (for systemd); logs to stderr"
    )
    mount.add_argument(
        "--cache-size",
        type=size,
        help=default_help("memory cache bytes", CacheConfig, "memory_bytes", as_size=True),
    )
    mount.add_argument("--cache-dir", type=Path, help="disk cache and persisted metadata (default: none)")
    mount.add_argument(
        "--cache-dir-size", type=size,
        help=default_help("cap of the disk cache", CacheConfig, "disk_bytes", as_size=True),
    )  # fmt: skip
    mount.add_argument(
        "--cache-dir-shared", action="store_true",
        help="other mounts (other hosts, on NFS/EFS/Lustre) use this --cache-dir too: cooperative cap,"
             " metadata as files, one fetch per part across mounts",
    )  # fmt: skip
    mount.add_argument(
        "--cache-dir-grace", type=float, metavar="S",
        help=default_help("shared: seconds an entry in use is safe from eviction", CacheConfig,
                          "shared_grace"),
    )  # fmt: skip
    mount.add_argument(
        "--lease-ttl", type=float, metavar="S",
        help=default_help("shared: seconds until the part lease of a dead mount expires", CacheConfig,
                          "lease_ttl"),
    )  # fmt: skip
    mount.add_argument(
        "--manifest", type=Path, metavar="FILE",
        help="serve exactly the files of this manifest (omicsfs manifest), with no list or metadata call",
    )  # fmt: skip
    mount.add_argument(
        "--uid", type=user_id, help="owner of every file, a number or a name (default: the mounting user)"
    )
    mount.add_argument(
        "--gid", type=group_id, help="group of every file, a number or a group name (default: the user's)"
    )
    mount.add_argument("--allow-other", action="store_true", help="let other users see the mount")
    mount.add_argument(
        "--auto-unmount", action="store_true",
        help="unmount the folder if the daemon dies, even by kill -9 (same as -o auto_unmount)",
    )  # fmt: skip
    mount.add_argument(
        "--sequence-store", action="append", default=[], metavar="ID_OR_NAME",
        help="show only this sequence store (repeat for more)",
    )  # fmt: skip
    mount.add_argument(
        "--reference-store", action="append", default=[], metavar="ID_OR_NAME",
        help="show only this reference store (repeat for more)",
    )  # fmt: skip
    mount.add_argument(
        "--listing-ttl",
        type=float,
        help=default_help("seconds listings are cached, > 0", MountConfig, "listing_ttl"),
    )
    mount.add_argument(
        "--metadata-tps", type=float,
        help=default_help("metadata/list calls per second", BackendLimits, "metadata_tps"),
    )  # fmt: skip
    mount.add_argument(
        "--get-read-set-tps", type=float,
        help=default_help("GetReadSet calls per second (data)", BackendLimits, "get_read_set_tps"),
    )  # fmt: skip
    mount.add_argument(
        "--get-reference-tps", type=float,
        help=default_help("GetReference calls per second (data)", BackendLimits, "get_reference_tps"),
    )  # fmt: skip
    mount.add_argument(
        "--retries",
        type=int,
        help=default_help("attempts on throttling/5xx before EIO", RetryPolicy, "attempts"),
    )
    mount.add_argument(
        "--retry-delay",
        type=float,
        help=default_help("first backoff delay, seconds", RetryPolicy, "base_delay"),
    )
    writing = mount.add_argument_group("writing (--read-write)")
    writing.add_argument(
        "--read-write", action="store_true", help="files copied into a sequence store become read sets"
    )
    writing.add_argument("--allow-delete", action="store_true", help="rm of a read set file deletes it")
    writing.add_argument(
        "--part-size",
        type=size,
        help=default_help("upload part size (at most 100M)", WriteConfig, "part_size", as_size=True),
    )
    writing.add_argument(
        "--parts-in-flight", type=int,
        help=default_help("parts uploading at once, all files", WriteConfig, "parts_in_flight"),
    )  # fmt: skip
    writing.add_argument(
        "--pair-timeout", type=float,
        help=default_help("seconds a closed _1 mate waits for its _2 before it is completed single-end",
                          WriteConfig, "pair_timeout"),
    )  # fmt: skip
    writing.add_argument("--sample-id", help="sampleId when the header and folder give none")
    writing.add_argument("--subject-id", help="subjectId when the folder gives none")
    writing.add_argument("--reference-arn", help="referenceArn of BAM/CRAM uploads (default: by @SQ)")
    writing.add_argument("--generated-from", help="generatedFrom of every upload")
    writing.add_argument("--description", help="description of every upload")
    mount.add_argument(
        "--log-level", choices=LOG_LEVELS, type=str.upper, default=DaemonConfig.log_level,
        help=default_help("log level", DaemonConfig, "log_level"),
    )  # fmt: skip
    mount.add_argument(
        "--debug", dest="log_level", action="store_const", const="DEBUG", help="same as --log-level DEBUG"
    )
    mount.add_argument(
        "--log-file",
        help="log here when detached (default: syslog, else ~/.local/state/omicsfs/MOUNTPOINT.log)",
    )
    mount.add_argument(
        "-o", dest="fuse_options", action="append", default=[], metavar="OPTIONS", help="extra FUSE options"
    )
    mount.add_argument("--notify-fd", type=int, help=argparse.SUPPRESS)
    mount.add_argument("--syslog", action="store_true", help=argparse.SUPPRESS)


def _given(**values: Any) -> dict[str, Any]:
    """Only the flags the user gave: the rest keep the dataclass defaults."""
    return {name: value for name, value in values.items() if value is not None}


def config_from_args(args: argparse.Namespace) -> MountConfig:
    """The mount's configuration; ValueError (worded for the user) for an impossible one."""
    cache_dir: Path | None = args.cache_dir.resolve() if args.cache_dir else None
    if args.allow_delete and not args.read_write:
        raise ValueError("--allow-delete needs --read-write")
    for flag, value in (("--sample-id", args.sample_id), ("--subject-id", args.subject_id)):
        if value is not None and not 0 < len(value) <= MAX_NAME:
            raise ValueError(f"{flag} must have 1 to {MAX_NAME} characters (HealthOmics' limit)")
    return MountConfig(
        uid=os.getuid() if args.uid is None else args.uid,
        gid=os.getgid() if args.gid is None else args.gid,
        sequence_store_ids=tuple(args.sequence_store),
        reference_store_ids=tuple(args.reference_store),
        cache=CacheConfig(
            **_given(memory_bytes=args.cache_size, disk_bytes=args.cache_dir_size,
                     shared_grace=args.cache_dir_grace, lease_ttl=args.lease_ttl),
            disk_dir=cache_dir / "parts" if cache_dir else None,
            shared=args.cache_dir_shared,
        ),
        limits=BackendLimits(
            **_given(metadata_tps=args.metadata_tps, get_read_set_tps=args.get_read_set_tps,
                     get_reference_tps=args.get_reference_tps),
            retry=RetryPolicy(**_given(attempts=args.retries, base_delay=args.retry_delay)),
        ),
        metadata_dir=cache_dir,
        writes=WriteConfig(
            enabled=args.read_write,
            allow_delete=args.allow_delete,
            sample_id=args.sample_id,
            subject_id=args.subject_id,
            reference_arn=args.reference_arn,
            generated_from=args.generated_from,
            description=args.description,
            **_given(
                part_size=args.part_size, parts_in_flight=args.parts_in_flight, pair_timeout=args.pair_timeout
            ),
        ),
        manifest=args.manifest.resolve() if args.manifest else None,
        **_given(listing_ttl=args.listing_ttl, data_plane=args.data_plane),
    )


def extra_fuse_options(args: argparse.Namespace) -> list[str]:
    options = [option for group in args.fuse_options for option in group.split(",") if option]
    if args.auto_unmount and "auto_unmount" not in options:
        options.append("auto_unmount")  # libfuse's: a fusermount3 helper unmounts a dead daemon's folder
    return options


def run_mount(args: argparse.Namespace, argv: list[str]) -> int:
    if args.notify_fd is not None:  # the detached daemon: libfuse's helpers must not inherit it
        os.set_inheritable(args.notify_fd, False)
    configure_logging(args.log_level, syslog=args.syslog)
    mountpoint = str(args.mountpoint.resolve())
    extra = extra_fuse_options(args)
    target = Target(
        endpoint_url=args.endpoint_url, region=args.region, profile=args.profile,
        s3_endpoint_url=args.s3_endpoint_url,
    )  # fmt: skip
    try:
        try:
            config = config_from_args(args)
        except ValueError as exc:
            raise MountError(str(exc)) from None
        check_endpoint_url(args.endpoint_url)
        if args.cache_dir:
            prepare_cache_dir(args.cache_dir.resolve(), shared=args.cache_dir_shared)
        if args.notify_fd is None:  # the checks run once, in the process the user started
            check_fuse(args.allow_other)
            check_mountpoint(args.mountpoint.resolve(), nonempty="nonempty" in extra)
        if config.manifest is not None:  # no call before serving: the manifest is checked here
            check_manifest(config.manifest)
            if args.notify_fd is None:
                check_offline(target)
        else:
            # Store names become IDs here, in the daemon as well (it is given the user's arguments).
            config = check_service(target, config, probe=args.notify_fd is None)
        if not args.foreground:
            destination = choose_destination(args.log_file, mountpoint)
            start_daemon(daemon_argv(argv), destination)
            announce_mounted(mountpoint, destination)
            return 0
        options = fuse_options(not args.read_write, args.allow_other, extra)
        return run_foreground(config, target, mountpoint, options, args.notify_fd)
    except MountError as exc:
        return report_failure(args, exc)


def announce_mounted(mountpoint: str, destination: LogDestination) -> None:
    """The one line a detached mount prints: the daemon's log holds what users need later
    (archived read sets and how to activate them, refused names, IAM denials)."""
    print(f"omicsfs: mounted {mountpoint}; the daemon logs to {destination.describe()}", flush=True)


def report_failure(args: argparse.Namespace, exc: Exception) -> int:
    """One line for the user, also sent up the notify pipe when we are the detached daemon (the
    caller waiting on it prints it and exits non-zero); returns the exit status, 1."""
    if args.notify_fd is not None:
        os.write(args.notify_fd, f"omicsfs mount: {exc}\n".encode())
    print(f"omicsfs mount: {exc}", file=sys.stderr)
    return 1


def daemon_argv(argv: list[str]) -> list[str]:
    """The user's own arguments, with paths made absolute (the child runs in /): the mount point,
    and any other existing folder or file (``--cache-dir``, ``--manifest``)."""
    result = []
    for item in argv:
        is_path = item and not item.startswith("-") and (os.path.isdir(item) or os.path.isfile(item))
        result.append(os.path.abspath(item) if is_path else item)
    return result


def run_unmount(args: argparse.Namespace) -> int:
    try:
        unmount_or_stop(str(args.mountpoint.resolve()))  # a busy mount: its daemon is stopped
    except UnmountError as exc:
        print(f"omicsfs unmount: {exc}", file=sys.stderr)
        return 1
    return 0
