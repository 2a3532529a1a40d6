"""Argument types shared by the subcommands: sizes, log levels, and defaults shown in help.

Defaults are not written here: each flag's default is read from the config dataclass that owns
it (omicsfs/config.py), so ``--help`` and the running mount can never disagree.
"""

from __future__ import annotations

import argparse
import grp
import pwd
from typing import Any

from omicsfs.config import default_of

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def size(text: str) -> int:
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


def user_id(text: str) -> int:
    """``--uid``: a number, or a user name as fstab's ``uid=`` and chown take."""
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such user: {text!r}") from None


def group_id(text: str) -> int:
    """``--gid``: a number, or a group name."""
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such group: {text!r}") from None


def show_size(count: int) -> str:
    """A byte count in the units ``size`` reads: 1G, 100M, 64K."""
    for suffix, unit in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)


def default_help(text: str, cls: type[Any], name: str, *, as_size: bool = False) -> str:
    """Help text ending with the field's default, as the config dataclass has it."""
    value = default_of(cls, name)
    shown = show_size(value) if as_size else value
    return f"{text} (default {shown})"
