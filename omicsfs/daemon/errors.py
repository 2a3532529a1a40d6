"""The one exception of the mount's preparation: a reason, worded for the user."""

from __future__ import annotations


class MountError(Exception):
    """A reason the mount cannot start, worded for the user (printed as one line)."""
