"""``--cache-dir``: a private folder, checked and tightened before the mount starts.

It holds read set data (``parts/``) and ``metadata.sqlite3`` with names, sample IDs and ARNs, so
it and everything in it must be the mounting user's alone: folders 0700, files 0600. A new cache
dir is made that way. An existing one that others can enter is tightened only when omicsfs can
tell it is its own: owned by this user and holding nothing but what omicsfs puts there (or
nothing at all, as after ``mkdir``). Anything else (a shared folder such as /var/cache, another
user's folder) is refused with one line rather than having its mode changed under other programs.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from omicsfs.daemon.errors import MountError

log = logging.getLogger(__name__)

#: What omicsfs keeps in a cache dir (fs/metastore.py, fs/read/disktier.py via config).
OWN_ENTRIES = frozenset(
    {"parts", "metadata.sqlite3", "metadata.sqlite3-wal", "metadata.sqlite3-shm", "metadata.sqlite3-journal",
     "metadata", "leases"}  # the last two: a shared cache dir (--cache-dir-shared)
)  # fmt: skip
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def prepare_cache_dir(path: Path, *, shared: bool = False) -> None:
    """Makes ``path`` (0700) or checks and tightens an existing one; MountError if it cannot be
    made private. A shared cache dir (``--cache-dir-shared``) is not walked to tighten what is
    inside: it may hold millions of entries over NFS, all written 0600 by omicsfs."""
    try:
        path.mkdir(parents=True, mode=PRIVATE_DIR)
        os.chmod(path, PRIVATE_DIR)  # mkdir's mode is masked by the umask
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise MountError(f"--cache-dir {path}: {exc.strerror}") from None
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise MountError(f"--cache-dir {path} is not a folder")
    if info.st_uid != os.geteuid():
        raise MountError(
            f"--cache-dir {path} belongs to another user (uid {info.st_uid}); use a folder of your own"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        foreign = sorted(set(os.listdir(path)) - OWN_ENTRIES)
        if foreign:
            raise MountError(
                f"--cache-dir {path} can be read by others (mode {mode:04o}) and holds files omicsfs did"
                f" not make ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); name a new"
                f" folder, or make this one private: chmod 700 {path}"
            )
        os.chmod(path, PRIVATE_DIR)
        log.warning("--cache-dir %s was mode %04o; made it 0700 (it holds read set data)", path, mode)
    if not shared:
        _tighten_contents(path)


def _tighten_contents(path: Path) -> None:
    """Earlier versions left files 0644 inside: everything below a private cache dir is made
    private too (folders 0700, files 0600)."""
    for folder, dirs, files in os.walk(path):
        for name in dirs:
            _chmod(Path(folder, name), PRIVATE_DIR)
        for name in files:
            _chmod(Path(folder, name), PRIVATE_FILE)


def _chmod(path: Path, mode: int) -> None:
    try:
        info = path.lstat()
        if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) & ~mode:
            os.chmod(path, stat.S_IMODE(info.st_mode) & mode)
    except OSError as exc:  # removed meanwhile, or not ours: the mount goes on
        log.debug("could not tighten %s: %s", path, exc)
