"""``--sequence-store`` and ``--reference-store``: an ID or a name, checked before mounting.

Users know their stores by name (the console shows names first), and a name given where an ID
was expected used to mount a folder whose every ``ls`` failed with EIO. Each value is matched
against the stores the account lists: an ID is taken as it is, a name must name exactly one
store. Unknown and ambiguous values stop the mount with one line that names the candidates. A
caller who may not list stores (IAM with only Get*Store) can still give IDs: they are checked
one by one with Get*Store.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from omicsfs.backend.errors import AccessDenied, NotFound
from omicsfs.backend.interface import Backend
from omicsfs.backend.models import StoreKind, StoreSummary
from omicsfs.daemon.errors import MountError

#: Store IDs as the API's patterns give them (10 to 36 digits).
STORE_ID = re.compile(r"[0-9]{10,36}")
#: Stores named in an error line; the rest are counted.
SHOWN = 8


def _shown(stores: Sequence[StoreSummary]) -> str:
    """``name (id), ...`` by name, then ID, so the line reads the same every time."""
    stores = sorted(stores, key=lambda store: (store.name, store.id))
    named = ", ".join(f"{store.name} ({store.id})" for store in stores[:SHOWN])
    more = len(stores) - SHOWN
    return named + (f" and {more} more" if more > 0 else "") if stores else "none"


def match_store(kind: StoreKind, value: str, stores: Sequence[StoreSummary]) -> str:
    """The ID of the one store ``value`` names (its ID, else its name)."""
    flag = f"--{kind}-store"
    for store in stores:
        if store.id == value:
            return store.id
    named = [store for store in stores if store.name == value]
    if len(named) == 1:
        return named[0].id
    if named:
        raise MountError(f"{flag} {value!r} names {len(named)} {kind} stores: {_shown(named)}; give one ID")
    raise MountError(f"{flag} {value!r}: no {kind} store has that ID or name (the stores: {_shown(stores)})")


async def resolve_stores(backend: Backend, kind: StoreKind, values: Sequence[str]) -> tuple[str, ...]:
    """The store IDs behind ``values``, in order, without repeats; () when none were given."""
    if not values:
        return ()
    try:
        stores = await backend.list_stores(kind)
    except AccessDenied:
        return await _check_ids(backend, kind, values)
    resolved = [match_store(kind, value, stores) for value in values]
    return tuple(dict.fromkeys(resolved))


async def _check_ids(backend: Backend, kind: StoreKind, values: Sequence[str]) -> tuple[str, ...]:
    flag = f"--{kind}-store"
    found = []
    for value in values:
        if not STORE_ID.fullmatch(value):
            raise MountError(
                f"{flag} {value!r}: listing {kind} stores is not allowed, so stores can only be given by ID"
            )
        try:
            found.append((await backend.get_store(kind, value)).id)
        except NotFound:
            raise MountError(f"{flag} {value}: no {kind} store has that ID") from None
    return tuple(dict.fromkeys(found))
