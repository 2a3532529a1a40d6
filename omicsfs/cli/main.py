"""The one entry point: ``omicsfs mount | unmount | manifest | serve | admin | demo | stats | env``,
and ``install-helper``.

Each subcommand's flags and runner live in their own module here; this one only assembles the
parser and dispatches. Heavy imports (pyfuse3, the local service) happen in the runners, so
``omicsfs --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys

import omicsfs
from omicsfs.cli import demo, env, fstab, manifest, mount, serve, stats
from omicsfs.cli.local import run_mount_command


def version() -> str:
    """The installed distribution's version (pyproject.toml), else the package's own."""
    try:
        return importlib.metadata.version("omicsfs")
    except importlib.metadata.PackageNotFoundError:
        return omicsfs.__version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omicsfs", description="AWS HealthOmics stores as a filesystem, and a local HealthOmics service."
    )
    parser.add_argument("--version", action="version", version=f"omicsfs {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_parsers(commands)
    mount.add_parsers(commands)
    manifest.add_parser(commands)
    demo.add_parser(commands)
    fstab.add_parser(commands)
    stats.add_parser(commands)
    env.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    match args.command:
        case "serve":
            return serve.run_serve(args)
        case "admin":
            return serve.run_admin(args)
        case "mount":
            return run_mount_command(args, argv)
        case "unmount":
            return mount.run_unmount(args)
        case "demo":
            return demo.run_demo(args)
        case "install-helper":
            return fstab.install_helper(args.target, remove=args.remove)
        case "stats":
            return stats.run_stats(args)
        case "manifest":
            return manifest.run_manifest(args, f"omicsfs {version()}")
        case "env":
            return env.run_env(args)
    raise AssertionError(args.command)
