"""``omicsfs env MOUNTPOINT``: the shell lines that make htslib find CRAM references on the mount.

    eval "$(omicsfs env /mnt/omics)"
    samtools view /mnt/omics/sequence-stores/cohort/NA12878.cram chr1:1-1000     # no -T

htslib looks a CRAM's reference up by each contig's ``M5`` (cram/cram_io.c ``cram_populate_ref``,
https://github.com/samtools/htslib): first in ``REF_CACHE``, then along ``REF_PATH``. Both are
set to the mount's by-md5 view (README.md, "CRAM without -T"):

- ``REF_PATH``: without it, htslib before 1.22 fetches every contig from the EBI's server over the
  network, and newer htslib fails.
- ``REF_CACHE`` set to the same folder: htslib opens a contig it finds there in place and reads
  only the ranges it needs. A contig htslib 1.16-1.21 loads through ``REF_PATH`` is copied into
  ``REF_CACHE`` when that is set (to ``~/.cache/hts-ref``, say): a second copy of the genome on
  disk. Found in ``REF_CACHE`` first, nothing is copied, and a read-only folder is never written.

``REF_PATH`` is a ``:``-separated list in which ``::`` stands for a ``:``
(cram/open_trace_file.c ``tokenise_search_path``); ``%`` cannot be escaped in either variable,
so a mount point whose path has one is refused.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from omicsfs.daemon.mounttable import FSTYPE, mount_table

#: htslib's pattern for a file named by an MD5: two characters, two more, the rest.
BY_MD5_PATTERN = "reference-stores/by-md5/%2s/%2s/%s"


class EnvError(ValueError):
    """The folder cannot be named in REF_PATH, or is not an omicsfs mount."""


def env_lines(mountpoint: str) -> list[str]:
    """The ``export`` lines for an omicsfs mount at ``mountpoint`` (an absolute path)."""
    if "%" in mountpoint:
        raise EnvError(f"{mountpoint}: htslib's REF_PATH and REF_CACHE cannot name a path with '%' in it")
    pattern = f"{mountpoint.rstrip('/')}/{BY_MD5_PATTERN}"
    return [
        f"export REF_PATH={shlex.quote(pattern.replace(':', '::'))}",
        f"export REF_CACHE={shlex.quote(pattern)}",
    ]


def add_parser(commands: Any) -> None:
    env = commands.add_parser(
        "env",
        help="print the REF_PATH/REF_CACHE lines that let htslib decode CRAMs from the mount",
        description='Use as: eval "$(omicsfs env MOUNTPOINT)"',
    )
    env.add_argument("mountpoint")


def run_env(args: argparse.Namespace) -> int:
    mountpoint = os.path.realpath(args.mountpoint)
    try:
        if mount_table().get(mountpoint) != FSTYPE:
            raise EnvError(f"{mountpoint} is not an omicsfs mount (omicsfs mount {mountpoint} first)")
        lines = env_lines(mountpoint)
    except EnvError as error:
        print(f"omicsfs env: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
