"""Permanent node <-> inode mapping: numbers are never reused during a mount.

Entries are never dropped on ``forget``: a node is a few short strings, and keeping them makes
inode numbers stable for the life of the mount (README.md, "Attributes") at a cost of about 200
bytes per object ever seen.
"""

from __future__ import annotations

import errno

from omicsfs.fs.errors import FsError
from omicsfs.fs.nodes import ROOT, Node

ROOT_INODE = 1


class InodeTable:
    def __init__(self) -> None:
        self._by_node: dict[Node, int] = {ROOT: ROOT_INODE}
        self._by_ino: dict[int, Node] = {ROOT_INODE: ROOT}

    def ino(self, node: Node) -> int:
        """The node's inode number, allocated on first sight."""
        number = self._by_node.get(node)
        if number is None:
            number = len(self._by_ino) + 1
            self._by_node[node] = number
            self._by_ino[number] = node
        return number

    def known(self, node: Node) -> int | None:
        """The node's number if the kernel may have seen it, without allocating one."""
        return self._by_node.get(node)

    def node(self, ino: int) -> Node:
        try:
            return self._by_ino[ino]
        except KeyError:
            raise FsError(errno.ESTALE, f"unknown inode {ino}") from None
