"""``mount -t fuse.omicsfs`` and /etc/fstab: the ``mount.fuse.omicsfs`` helper.

For type ``fuse.omicsfs`` mount(8) first looks for ``/sbin/mount.fuse.omicsfs`` and runs it as
``mount.fuse.omicsfs SOURCE MOUNTPOINT [-sfnv] [-N NS] [-o OPTIONS]``. A helper of our own, rather
than mount.fuse3's fallback (which would run ``omicsfs SOURCE MOUNTPOINT -o OPTIONS``, a grammar
the omicsfs command does not have), keeps the translation from ``-o`` options to ``omicsfs mount``
flags in one pure, tested function with errors in omicsfs's words. The helper then runs
``omicsfs mount`` detached, which returns once the mount is live: mount(8) waits for its helper,
so ``mount`` returning 0 means the folder is usable.

SOURCE is ``local:DATA_DIR`` (``--local DATA_DIR``: a local service's data dir, served
privately) or else a label, by convention ``omicsfs``, meaning HealthOmics (or the endpoint given
by ``endpoint_url=``). Any label is accepted, as sshfs-style helpers do, because mount(8) turns a
source that names an existing path into an absolute path (``omicsfs`` run in a folder holding an
``omicsfs`` folder arrives as ``/that/folder/omicsfs``).

Option names may be spelt with dashes, as the flags are (``cache-size=1G`` is ``cache_size=1G``).

mount(8) adds ``rw`` whenever ``ro`` is not given, so ``rw`` cannot be taken as a request to
write: like ``ro`` it keeps omicsfs's read-only default, and writing is asked for by name with
``read_write`` (``--read-write``), which ``ro`` overrides.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import sysconfig
from pathlib import Path

from omicsfs.cli.local import run_mount_command
from omicsfs.cli.mount import add_mount_arguments
from omicsfs.cli.options import group_id, user_id

log = logging.getLogger(__name__)

PROG = "mount.fuse.omicsfs"
LOCAL_SOURCE = "local:"

#: ``key=value`` options and the ``omicsfs mount`` flag each becomes.
VALUE_OPTIONS = {
    "endpoint_url": "--endpoint-url",
    "s3_endpoint_url": "--s3-endpoint-url",
    "data_plane": "--data-plane",
    "region": "--region",
    "profile": "--profile",
    "local": "--local",
    "cache_dir": "--cache-dir",
    "cache_size": "--cache-size",
    "cache_dir_size": "--cache-dir-size",
    "uid": "--uid",
    "gid": "--gid",
    "sequence_store": "--sequence-store",
    "reference_store": "--reference-store",
    "listing_ttl": "--listing-ttl",
    "metadata_tps": "--metadata-tps",
    "get_read_set_tps": "--get-read-set-tps",
    "get_reference_tps": "--get-reference-tps",
    "manifest": "--manifest",
    "cache_dir_grace": "--cache-dir-grace",
    "lease_ttl": "--lease-ttl",
    "retries": "--retries",
    "retry_delay": "--retry-delay",
    "log_level": "--log-level",
    "log_file": "--log-file",
    "part_size": "--part-size",
    "parts_in_flight": "--parts-in-flight",
    "pair_timeout": "--pair-timeout",
    "sample_id": "--sample-id",
    "subject_id": "--subject-id",
    "reference_arn": "--reference-arn",
}
#: Options without a value that become flags.
FLAG_OPTIONS = {
    "allow_other": "--allow-other", "read_write": "--read-write", "allow_delete": "--allow-delete",
    "auto_unmount": "--auto-unmount", "cache_dir_shared": "--cache-dir-shared",
}  # fmt: skip
#: The kernel's generic mount flags, handed on to the FUSE mount (``-o``) as they are.
KERNEL_OPTIONS = frozenset(
    {
        "nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime", "atime", "relatime",
        "norelatime", "strictatime", "nostrictatime", "nodiratime", "diratime", "lazytime",
        "nolazytime", "sync", "async", "dirsync", "nonempty",
    }
)  # fmt: skip
#: Consumed by mount(8), systemd or fstab tooling; meaningless to omicsfs, dropped quietly.
IGNORED_OPTIONS = frozenset(
    {"_netdev", "nofail", "noauto", "auto", "user", "users", "nouser", "owner", "group", "defaults"}
)
IGNORED_PREFIXES = ("x-", "comment=")


class HelperError(ValueError):
    """A source or option the helper cannot translate, worded as one line for the user."""


def translate(source: str, mountpoint: str, options: list[str], *, sloppy: bool = False) -> list[str]:
    """The ``omicsfs`` arguments for ``mount.fuse.omicsfs SOURCE MOUNTPOINT -o OPTIONS``.

    Raises HelperError for an unknown source or option (with ``sloppy``, as mount(8)'s ``-s``,
    unknown options are logged and skipped instead).
    """
    argv = ["mount", mountpoint]
    kernel: list[str] = []
    read_only = False
    if source.startswith(LOCAL_SOURCE):
        if not source[len(LOCAL_SOURCE) :]:
            raise HelperError("source local: needs a data dir (local:/path/to/data-dir)")
        argv += ["--local", source[len(LOCAL_SOURCE) :]]
    for option in options:
        key, has_value, value = option.partition("=")
        key = key.replace("-", "_")  # cache-size=1G as the flag is spelt: the same as cache_size=1G
        if option in ("ro", "rw"):
            read_only = read_only or option == "ro"
        elif option in IGNORED_OPTIONS or option.startswith(IGNORED_PREFIXES):
            continue
        elif option in KERNEL_OPTIONS:
            kernel.append(option)
        elif key in FLAG_OPTIONS:
            if has_value:
                raise HelperError(f"option {key} takes no value (got {option!r})")
            argv.append(FLAG_OPTIONS[key])
        elif key in VALUE_OPTIONS:
            if not value:
                raise HelperError(f"option {key} needs a value ({key}=...)")
            if key == "local" and "--local" in argv:
                raise HelperError("local= and a local: source cannot be used together")
            argv += [VALUE_OPTIONS[key], _owner(key, value)]
        elif sloppy:
            log.warning("ignoring unknown option %r", option)
        else:
            raise HelperError(f"unknown option {option!r} (see 'fstab' in omicsfs's README)")
    if read_only and "--read-write" in argv:
        argv.remove("--read-write")
    if kernel:
        argv += ["-o", ",".join(kernel)]
    return argv


def _owner(key: str, value: str) -> str:
    """uid= and gid= take numbers or names, as other filesystems' options do."""
    if key not in ("uid", "gid"):
        return value
    try:
        return str(user_id(value) if key == "uid" else group_id(value))
    except argparse.ArgumentTypeError:
        raise HelperError(f"{key}={value}: no such {'user' if key == 'uid' else 'group'}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mount.fuse.omicsfs``; exit 1 for a bad invocation, 32 for a failed
    mount (mount(8)'s own codes)."""
    parser = argparse.ArgumentParser(prog=PROG, description="mount(8) helper for fuse.omicsfs")
    parser.add_argument("source", help="local:DATA_DIR, or a label (omicsfs)")
    parser.add_argument("mountpoint")
    parser.add_argument("-o", dest="options", action="append", default=[], help="comma-separated options")
    parser.add_argument("-s", dest="sloppy", action="store_true", help="ignore unknown options")
    parser.add_argument("-f", dest="fake", action="store_true", help="print the command, do not mount")
    parser.add_argument("-n", dest="no_mtab", action="store_true", help="accepted (there is no mtab)")
    parser.add_argument("-v", dest="verbose", action="store_true", help="print the omicsfs command")
    parser.add_argument("-N", dest="namespace", help="not supported")
    parser.add_argument("-t", dest="type", help="accepted (always fuse.omicsfs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    if args.namespace is not None:
        print(f"{PROG}: mounting in another namespace (-N) is not supported", file=sys.stderr)
        return 1
    options = [option for group in args.options for option in group.split(",") if option]
    try:
        command = translate(args.source, args.mountpoint, options, sloppy=args.sloppy)
    except HelperError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if args.verbose or args.fake:
        print(f"{PROG}: omicsfs {shlex.join(command)}", file=sys.stderr)
    if args.fake:
        return 0
    mount_parser = argparse.ArgumentParser(prog="omicsfs mount")
    add_mount_arguments(mount_parser)
    mount_args = mount_parser.parse_args(command[1:])
    return 0 if run_mount_command(mount_args, command) == 0 else 32


def install_helper(target: Path, *, remove: bool = False) -> int:
    """Links ``target`` (default /sbin/mount.fuse.omicsfs, where mount(8) looks) to this
    installation's ``mount.fuse.omicsfs`` script, or removes that link."""
    try:
        print(_install(target, remove))
    except HelperError as exc:
        print(f"omicsfs install-helper: {exc}", file=sys.stderr)
        return 1
    return 0


def _install(target: Path, remove: bool) -> str:
    script = Path(sysconfig.get_path("scripts")) / PROG
    if target.exists() and not target.is_symlink():
        raise HelperError(f"{target} exists and is not a link made by omicsfs; left alone")
    if remove:
        if not target.is_symlink():
            return f"{target} is not installed"
        target.unlink()
        return f"removed {target}"
    if not script.exists():
        raise HelperError(f"{script} is missing (install omicsfs with pip first)")
    try:
        if target.is_symlink():
            target.unlink()
        target.symlink_to(script)
    except OSError as exc:
        raise HelperError(f"cannot write {target}: {exc.strerror}") from None
    return f"installed {target} -> {script}"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    helper = commands.add_parser(
        "install-helper", help="install mount.fuse.omicsfs, so mount -t fuse.omicsfs and fstab work"
    )
    helper.add_argument("--target", type=Path, default=Path("/sbin/mount.fuse.omicsfs"))
    helper.add_argument("--remove", action="store_true", help="remove the helper instead")
