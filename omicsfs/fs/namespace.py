"""Names and numbers: the nodes each folder holds, their inodes, and telling the kernel when a
name it may have cached has gone.

This is the narrow view of the filesystem the write engine gets (fs/write/ops.py): it adds its
own entries (files being written, folders made with mkdir) through ``add_entries`` and drops
names with ``forget``; it never sees the caches, handles or attributes.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

from omicsfs.fs.errors import FsError
from omicsfs.fs.inodes import InodeTable
from omicsfs.fs.nodes import FOLDER_TYPES, Folder, Node
from omicsfs.fs.tree import Tree

log = logging.getLogger(__name__)

#: Called with (parent inode, name, inode) when a name the kernel may have cached has gone; the
#: inode is None when the node lives on under another name (the kernel must only drop the name).
Invalidator = Callable[[int, str, int | None], None]
#: Called with an inode whose attributes (size) the kernel may have cached have changed.
InodeInvalidator = Callable[[int], None]
#: Entries a folder holds besides what the service lists (the write engine's).
ExtraEntries = Callable[[Folder], dict[str, Node]]


class Namespace:
    def __init__(
        self, tree: Tree, invalidate: Invalidator | None = None,
        invalidate_inode: InodeInvalidator | None = None,
    ) -> None:  # fmt: skip
        self.tree = tree
        self.inodes = InodeTable()
        self._invalidate = invalidate
        self._invalidate_inode = invalidate_inode
        self._extra: list[ExtraEntries] = []
        self._last_names: dict[Folder, dict[str, Node]] = {}

    def add_entries(self, source: ExtraEntries) -> None:
        self._extra.append(source)

    def node(self, ino: int) -> Node:
        return self.inodes.node(ino)

    def folder(self, ino: int) -> Folder:
        node = self.inodes.node(ino)
        if not isinstance(node, FOLDER_TYPES):
            raise FsError(errno.ENOTDIR)
        return node

    async def children(self, folder: Folder) -> dict[str, Node]:
        """A folder's entries, telling the kernel about names that have gone since last time."""
        children = await self.tree.children(folder)
        for source in self._extra:
            extra = source(folder)
            if extra:
                children = {**extra, **children}
        previous = self._last_names.get(folder)
        if previous is not None and previous is not children:
            parent = self.inodes.known(folder)
            current = set(children.values())
            for name, old in previous.items():
                if children.get(name) != old and parent is not None:
                    self.forget(parent, name, old, deleted=old not in current)
        self._last_names[folder] = children
        return children

    def forget(self, parent: int, name: str, child: Node, *, deleted: bool = True) -> None:
        """Tells the kernel that ``name`` in folder ``parent`` no longer names ``child``.

        ``deleted`` says the node itself is gone. A node that was only renamed (a collision made
        ``q_1.fastq.gz`` into ``q_1.<id>.fastq.gz``) must not be reported deleted: the kernel
        then clears the inode's link count, and the renamed file shows nlink 0 for as long as
        its attributes are cached (an hour for ACTIVE files).
        """
        ino = self.inodes.known(child)
        if ino is not None and self._invalidate is not None:
            self._invalidate(parent, name, ino if deleted else None)

    def changed(self, ino: int) -> None:
        """Tells the kernel that what it may have cached of inode ``ino`` (its size) changed."""
        if self._invalidate_inode is not None:
            self._invalidate_inode(ino)

