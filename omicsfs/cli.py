"""The one entry point: ``omicsfs mount | unmount | serve | admin | demo | install-helper``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.error
import urllib.request
from pathlib import Path

from omicsfs import statscli

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _size(text: str) -> int:
    """Byte counts with optional binary suffixes: 65536, 64K, 1M, 100MiB."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    factor = 1
    if cleaned and cleaned[-1] in units:
        factor = units[cleaned[-1]]
        cleaned = cleaned[:-1]
    try:
        value = int(cleaned) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a size must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omicsfs", description="AWS HealthOmics stores as a filesystem, and a local HealthOmics service."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the local HealthOmics storage service")
    serve.add_argument(
        "--data-dir", type=Path, help="state and files (default ~/.local/share/omicsfs/service)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=0, help="port (0 picks a free one; default 0)")
    serve.add_argument("--s3-port", type=int, default=0, help="port of the S3 access endpoint (default 0)")
    serve.add_argument(
        "--part-size",
        type=_size,
        default=104_857_600,
        help="partSize of stored files in bytes (default 104857600, as AWS)",
    )
    serve.add_argument("--s3-root", type=Path, help="folder standing in for S3 (default DATA_DIR/s3)")
    serve.add_argument(
        "--processing-delay",
        type=float,
        default=0.2,
        help="seconds before uploads and jobs progress (default 0.2)",
    )
    serve.add_argument("--faults", default="", help="fault injection spec, e.g. 'seed=1;throttle=0.2'")
    serve.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, type=str.upper)

    _add_mount_parser(commands)
    _add_ops_parsers(commands)
    statscli.add_parser(commands)
    unmount = commands.add_parser("unmount", help="unmount an omicsfs mount")
    unmount.add_argument("mountpoint", type=Path)

    admin = commands.add_parser("admin", help="talk to a running local service's admin routes")
    admin.add_argument("--endpoint-url", required=True, help="the service's URL")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    archive = admin_commands.add_parser("archive", help="move an ACTIVE read set to ARCHIVED")
    archive.add_argument("sequence_store_id")
    archive.add_argument("read_set_id")
    admin_commands.add_parser("stats", help="print request counts per operation")
    faults = admin_commands.add_parser("faults", help="replace the fault injection spec")
    faults.add_argument("spec")
    admin_commands.add_parser("drain", help="wait until background processing and jobs are idle")
    return parser


def _add_mount_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mount = commands.add_parser("mount", help="mount HealthOmics stores as folders")
    mount.add_argument("mountpoint", type=Path, help="an empty folder")
    mount.add_argument("--endpoint-url", help="service URL (a local service); turns host prefixes off")
    mount.add_argument(
        "--local", type=Path, metavar="DATA_DIR", help="serve this local data dir privately while mounted"
    )
    mount.add_argument("--region", help="AWS region (default: the standard AWS chain)")
    mount.add_argument("--profile", help="AWS profile (default: the standard AWS chain)")
    mount.add_argument("--foreground", action="store_true", help="stay in the foreground (for systemd)")
    mount.add_argument("--cache-size", type=_size, default=1 << 30, help="memory cache bytes (default 1G)")
    mount.add_argument("--cache-dir", type=Path, help="disk cache and persisted metadata (default: none)")
    mount.add_argument(
        "--cache-dir-size", type=_size, default=20 << 30, help="cap of the disk cache (default 20G)"
    )
    mount.add_argument("--uid", type=int, help="owner of every file (default: the mounting user)")
    mount.add_argument("--gid", type=int, help="group of every file (default: the mounting user's)")
    mount.add_argument("--allow-other", action="store_true", help="let other users see the mount")
    mount.add_argument(
        "--sequence-store", action="append", default=[], metavar="ID", help="show only these sequence stores"
    )
    mount.add_argument(
        "--reference-store", action="append", default=[], metavar="ID", help="only these reference stores"
    )
    mount.add_argument(
        "--listing-ttl", type=float, default=30.0, help="seconds listings are cached (default 30, > 0)"
    )
    mount.add_argument(
        "--metadata-tps", type=float, default=5.0, help="metadata/list calls per second (default 5)"
    )
    mount.add_argument(
        "--retries", type=int, default=10, help="attempts on throttling/5xx before EIO (default 10)"
    )
    mount.add_argument(
        "--retry-delay", type=float, default=0.1, help="first backoff delay, seconds (default 0.1)"
    )
    writing = mount.add_argument_group("writing (--read-write)")
    writing.add_argument(
        "--read-write", action="store_true", help="files copied into a sequence store become read sets"
    )
    writing.add_argument("--allow-delete", action="store_true", help="rm of a read set file deletes it")
    writing.add_argument(
        "--part-size", type=_size, default=100 << 20, help="upload part size (default and maximum 100M)"
    )
    writing.add_argument(
        "--parts-in-flight", type=int, default=4, help="parts uploading at once, all files (default 4)"
    )
    writing.add_argument(
        "--pair-timeout", type=float, default=60.0,
        help="seconds a closed _1 mate waits for its _2 before it is completed single-end (default 60)",
    )  # fmt: skip
    writing.add_argument("--sample-id", help="sampleId when the header and folder give none")
    writing.add_argument("--subject-id", help="subjectId when the folder gives none")
    writing.add_argument("--reference-arn", help="referenceArn of BAM/CRAM uploads (default: by @SQ)")
    writing.add_argument("--generated-from", help="generatedFrom of every upload")
    writing.add_argument("--description", help="description of every upload")
    mount.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, type=str.upper)
    mount.add_argument("--log-file", help="log here when detached (default: syslog)")
    mount.add_argument(
        "-o", dest="fuse_options", action="append", default=[], metavar="OPTIONS", help="extra FUSE options"
    )
    mount.add_argument("--notify-fd", type=int, help=argparse.SUPPRESS)
    mount.add_argument("--syslog", action="store_true", help=argparse.SUPPRESS)


def _add_ops_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="sample data in a local service, mounted; Ctrl-C stops")
    demo.add_argument("mountpoint", type=Path, nargs="?", default=Path("omics"), help="default ./omics")
    demo.add_argument("--data-dir", type=Path, help="default ~/.local/share/omicsfs/demo")
    demo.add_argument("--log-level", default="WARNING", choices=LOG_LEVELS, type=str.upper)
    helper = commands.add_parser(
        "install-helper", help="install mount.fuse.omicsfs, so mount -t fuse.omicsfs and fstab work"
    )
    helper.add_argument("--target", type=Path, default=Path("/sbin/mount.fuse.omicsfs"))
    helper.add_argument("--remove", action="store_true", help="remove the helper instead")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "admin":
        return _admin(args)
    if args.command == "mount" and args.local is not None:
        from omicsfs.localmount import run_local_mount

        return run_local_mount(args, argv if argv is not None else sys.argv[1:])
    if args.command == "mount":
        from omicsfs.mountcli import run_mount

        return run_mount(args, argv if argv is not None else sys.argv[1:])
    if args.command == "demo":
        from omicsfs.demo import run_demo

        return run_demo(args)
    if args.command == "install-helper":
        from omicsfs.fstab import install_helper

        return install_helper(args.target, remove=args.remove)
    if args.command == "stats":
        return statscli.run_stats(args)
    if args.command == "unmount":
        from omicsfs.mountcli import run_unmount

        return run_unmount(args)
    raise AssertionError(args.command)


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from omicsfs.localservice.context import ServiceConfig
    from omicsfs.localservice.faults import Faults, FaultSpecError
    from omicsfs.localservice.server import default_data_dir, serve

    try:
        faults = Faults.parse(args.faults)
    except FaultSpecError as exc:
        print(f"omicsfs serve: --faults: {exc}", file=sys.stderr)
        return 2
    data_dir = (args.data_dir or default_data_dir()).resolve()
    config = ServiceConfig(
        data_dir=data_dir,
        s3_root=(args.s3_root or data_dir / "s3").resolve(),
        part_size=args.part_size,
        processing_delay=args.processing_delay,
    )
    try:
        return serve(config, args.host, args.port, faults, args.log_level, s3_port=args.s3_port)
    except OSError as exc:
        ports = f"{args.port} / --s3-port {args.s3_port}"
        print(f"omicsfs serve: cannot listen on {args.host}:{ports}: {exc.strerror}", file=sys.stderr)
        return 1


def _admin(args: argparse.Namespace) -> int:
    base = args.endpoint_url.rstrip("/") + "/_omicsfs"
    if args.admin_command == "archive":
        request = urllib.request.Request(
            f"{base}/archive/{args.sequence_store_id}/{args.read_set_id}", method="POST"
        )
    elif args.admin_command == "stats":
        request = urllib.request.Request(f"{base}/stats")
    elif args.admin_command == "faults":
        request = urllib.request.Request(f"{base}/faults", data=args.spec.encode(), method="PUT")
    else:
        request = urllib.request.Request(f"{base}/drain", method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            print(json.dumps(json.load(response), indent=2))
        return 0
    except urllib.error.HTTPError as exc:
        print(f"omicsfs admin: {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"omicsfs admin: cannot reach {args.endpoint_url}: {exc.reason}", file=sys.stderr)
        return 1
