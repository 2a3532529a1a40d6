"""``omicsfs manifest``: write down the read sets and references a job needs, once for a cluster.

It pays the list and metadata calls a mount would make (ListReadSets per 100 read sets, one
GetReadSetMetadata per chosen read set, Get*Store per store), paced at ``--metadata-tps``, so
that ``omicsfs mount --manifest FILE`` on every node of a cluster makes none (fs/manifest.py;
README.md, "Running on a cluster"). Read sets are chosen by store, sample, subject, status,
file type or ID; the references that chosen BAM/CRAM read sets name come along (a CRAM decodes
only against its reference) unless ``--no-linked-references``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from omicsfs.backend.errors import BackendError, NotFound
from omicsfs.backend.interface import Backend
from omicsfs.backend.models import (
    ReadSetSummary,
    ReferenceSummary,
    Status,
    StoreKind,
    StoreSummary,
)
from omicsfs.backend.omics import OmicsBackend
from omicsfs.backend.stats import BackendStats
from omicsfs.cli.options import default_help
from omicsfs.config import BackendLimits, RetryPolicy
from omicsfs.daemon.checks import Target, check_endpoint_url, client_for, session_for
from omicsfs.daemon.errors import MountError
from omicsfs.daemon.stores import resolve_stores
from omicsfs.fs.manifest import (
    Manifest,
    ReadSetEntry,
    ReferenceEntry,
    ReferenceStoreEntry,
    SequenceStoreEntry,
    now_iso,
)

#: Metadata calls in flight at once; the backend's token bucket paces them to the quota.
CONCURRENCY = 8


@dataclass(frozen=True)
class Selection:
    """Which objects go into the manifest; empty filters choose everything."""

    sequence_stores: tuple[str, ...] = ()
    reference_stores: tuple[str, ...] = ()
    sample_ids: tuple[str, ...] = ()
    subject_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = (Status.ACTIVE,)
    file_types: tuple[str, ...] = ()
    read_set_ids: tuple[str, ...] = ()
    reference_ids: tuple[str, ...] = ()
    linked_references: bool = True
    #: Reference stores are included only when named (or linked), not all by default.
    all_references: bool = False

    def chooses(self, read_set: ReadSetSummary) -> bool:
        return (
            (not self.statuses or read_set.status in self.statuses)
            and (not self.sample_ids or read_set.sample_id in self.sample_ids)
            and (not self.subject_ids or read_set.subject_id in self.subject_ids)
            and (not self.file_types or read_set.file_type in self.file_types)
            and (not self.read_set_ids or read_set.id in self.read_set_ids)
        )

    def chooses_reference(self, reference: ReferenceSummary) -> bool:
        return (not self.statuses or reference.status in self.statuses) and (
            not self.reference_ids or reference.id in self.reference_ids
        )


@dataclass
class _Found:
    stores: dict[StoreKind, dict[str, StoreSummary]] = field(
        default_factory=lambda: {StoreKind.SEQUENCE: {}, StoreKind.REFERENCE: {}}
    )
    read_sets: dict[str, list[ReadSetEntry]] = field(default_factory=dict)
    references: dict[str, dict[str, ReferenceEntry]] = field(default_factory=dict)


def reference_of(arn: str) -> tuple[str, str] | None:
    """(reference store ID, reference ID) from ``arn:aws:omics:R:A:referenceStore/S/reference/ID``."""
    resource = arn.split(":", 5)[-1] if arn.count(":") >= 5 else ""
    parts = resource.split("/")
    if len(parts) == 4 and parts[0] == "referenceStore" and parts[2] == "reference":
        return parts[1], parts[3]
    return None


async def build_manifest(backend: Backend, selection: Selection, created_by: str = "") -> Manifest:
    """The manifest of what ``selection`` chooses: the list and metadata calls happen here."""
    found = _Found()
    limiter = trio.CapacityLimiter(CONCURRENCY)
    sequence_ids = await _store_ids(backend, StoreKind.SEQUENCE, selection.sequence_stores, True)
    for store_id in sequence_ids:
        found.stores[StoreKind.SEQUENCE][store_id] = await backend.get_store(StoreKind.SEQUENCE, store_id)
        chosen = [rs for rs in await backend.list_read_sets(store_id) if selection.chooses(rs)]
        found.read_sets[store_id] = await _metadata(limiter, chosen, backend.get_read_set_metadata)
    everything = selection.all_references or bool(selection.reference_ids)
    reference_ids = await _store_ids(backend, StoreKind.REFERENCE, selection.reference_stores, everything)
    for store_id in reference_ids:
        listed = [ref for ref in await backend.list_references(store_id) if selection.chooses_reference(ref)]
        entries = await _metadata(limiter, listed, backend.get_reference_metadata)
        found.references[store_id] = {entry.summary.id: entry for entry in entries}
    if selection.linked_references:
        await _linked_references(backend, found, limiter)
    for store_id in found.references:
        if store_id not in found.stores[StoreKind.REFERENCE]:
            detail = await backend.get_store(StoreKind.REFERENCE, store_id)
            found.stores[StoreKind.REFERENCE][store_id] = detail
    return Manifest(
        sequence_stores=tuple(
            SequenceStoreEntry(store, tuple(found.read_sets.get(store.id, [])))
            for store in found.stores[StoreKind.SEQUENCE].values()
        ),
        reference_stores=tuple(
            ReferenceStoreEntry(store, tuple(found.references.get(store.id, {}).values()))
            for store in found.stores[StoreKind.REFERENCE].values()
        ),
        created_at=now_iso(),
        created_by=created_by,
        selection={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(selection).items()},
    )


async def _store_ids(
    backend: Backend, kind: StoreKind, values: tuple[str, ...], all_if_none: bool
) -> list[str]:
    if values:
        return list(await resolve_stores(backend, kind, values))
    if not all_if_none:
        return []
    return [store.id for store in await backend.list_stores(kind)]


async def _concurrently(limiter: trio.CapacityLimiter, calls: list[Callable[[], Awaitable[None]]]) -> None:
    """Runs the calls at most ``limiter`` at a time; the first failure is raised as itself (not
    in an exception group), after the others have finished."""
    failures: list[Exception] = []

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with limiter:
            try:
                await call()
            except Exception as exc:
                failures.append(exc)

    async with trio.open_nursery() as nursery:
        for call in calls:
            nursery.start_soon(one, call)
    if failures:
        raise failures[0]


async def _metadata(limiter: trio.CapacityLimiter, summaries: Iterable[Any], get: Any) -> list[Any]:
    """Get*Metadata of each summary, concurrently (paced by the backend); in listing order."""
    summaries = list(summaries)
    results: list[Any] = [None] * len(summaries)

    def call(index: int, summary: Any) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            fresh, files = await get(summary.store_id, summary.id)
            entry_type = ReadSetEntry if isinstance(fresh, ReadSetSummary) else ReferenceEntry
            results[index] = entry_type(fresh, files)

        return run

    await _concurrently(limiter, [call(index, summary) for index, summary in enumerate(summaries)])
    return results


async def _linked_references(backend: Backend, found: _Found, limiter: trio.CapacityLimiter) -> None:
    """The references the chosen read sets name, unless already there."""
    wanted: dict[tuple[str, str], str] = {}
    for entries in found.read_sets.values():
        for entry in entries:
            where = reference_of(entry.summary.reference_arn)
            if where is not None and where[1] not in found.references.get(where[0], {}):
                wanted[where] = entry.summary.id

    def call(store_id: str, reference_id: str, read_set_id: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                summary, files = await backend.get_reference_metadata(store_id, reference_id)
            except NotFound:
                raise MountError(
                    f"read set {read_set_id} names reference {reference_id} of store {store_id},"
                    " which does not exist (--no-linked-references leaves references out)"
                ) from None
            found.references.setdefault(store_id, {})[reference_id] = ReferenceEntry(summary, files)

        return run

    await _concurrently(limiter, [call(s, r, rs) for (s, r), rs in wanted.items()])


def describe(manifest: Manifest) -> str:
    def count(n: int, what: str) -> str:
        return f"{n} {what}" + ("" if n == 1 else "s")

    read_sets = sum(len(s.read_sets) for s in manifest.sequence_stores)
    references = sum(len(s.references) for s in manifest.reference_stores)
    return (
        f"{count(read_sets, 'read set')} in {count(len(manifest.sequence_stores), 'sequence store')},"
        f" {count(references, 'reference')} in {count(len(manifest.reference_stores), 'reference store')}"
    )


# -- the command -----------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "manifest",
        help="write a manifest of read sets and references for --manifest mounts",
        description="Lists and describes the chosen read sets and references once, so mounts with"
        " --manifest make no list or metadata call (docs/manifest.md).",
    )
    parser.add_argument("-o", "--output", type=Path, help="write it here (default: standard output)")
    parser.add_argument("--endpoint-url", help="service URL (a local service); turns host prefixes off")
    parser.add_argument("--region", help="AWS region (default: the standard AWS chain)")
    parser.add_argument("--profile", help="AWS profile (default: the standard AWS chain)")
    parser.add_argument("--sequence-store", action="append", default=[], metavar="ID_OR_NAME",
                        help="read sets of this sequence store (repeat; default: every store)")
    parser.add_argument("--reference-store", action="append", default=[], metavar="ID_OR_NAME",
                        help="every reference of this reference store (repeat)")
    parser.add_argument("--sample-id", action="append", default=[], help="only read sets of this sample")
    parser.add_argument("--subject-id", action="append", default=[], help="only read sets of this subject")
    parser.add_argument("--status", action="append", default=[], type=str.upper,
                        help="only objects with this status (repeat; default: ACTIVE)")
    parser.add_argument("--file-type", action="append", default=[], type=str.upper,
                        choices=["BAM", "CRAM", "UBAM", "FASTQ"], help="only read sets of this type")
    parser.add_argument("--read-set-id", action="append", default=[], help="only this read set (repeat)")
    parser.add_argument("--reference-id", action="append", default=[], help="only this reference (repeat)")
    parser.add_argument("--no-linked-references", action="store_true",
                        help="leave out the references that chosen BAM/CRAM read sets name")
    parser.add_argument("--metadata-tps", type=float,
                        help=default_help("metadata/list calls per second", BackendLimits, "metadata_tps"))
    parser.add_argument("--retries", type=int,
                        help=default_help("attempts on throttling/5xx", RetryPolicy, "attempts"))  # fmt: skip


def selection_from_args(args: argparse.Namespace) -> Selection:
    return Selection(
        sequence_stores=tuple(args.sequence_store),
        reference_stores=tuple(args.reference_store),
        sample_ids=tuple(args.sample_id),
        subject_ids=tuple(args.subject_id),
        statuses=tuple(args.status) or (Status.ACTIVE,),
        file_types=tuple(args.file_type),
        read_set_ids=tuple(args.read_set_id),
        reference_ids=tuple(args.reference_id),
        linked_references=not args.no_linked_references,
    )


def run_manifest(args: argparse.Namespace, created_by: str) -> int:
    target = Target(endpoint_url=args.endpoint_url, region=args.region, profile=args.profile)
    selection = selection_from_args(args)
    try:
        check_endpoint_url(args.endpoint_url)
        session = session_for(target)
        client = client_for(session, target)
        limits = BackendLimits(
            **({"metadata_tps": args.metadata_tps} if args.metadata_tps else {}),
            retry=RetryPolicy(**({"attempts": args.retries} if args.retries else {})),
        )
        stats = BackendStats()
        backend = OmicsBackend(client, limits, stats)
        try:
            manifest = trio.run(build_manifest, backend, selection, created_by)
        except BackendError as error:
            raise MountError(f"{error} (request {error.request_id or '-'})") from None
        if not any(True for _ in manifest.read_sets()) and not any(True for _ in manifest.references()):
            raise MountError("nothing matches: no read set or reference was chosen")
        text = manifest.to_json()
        if args.output is None:
            sys.stdout.write(text)
        else:
            _write_atomically(args.output, text)
    except (MountError, ValueError) as exc:
        print(f"omicsfs manifest: {exc}", file=sys.stderr)
        return 1
    calls = sum(stats.api_calls.values())
    where = args.output or "standard output"
    print(f"omicsfs manifest: {describe(manifest)} -> {where} ({calls} API calls)", file=sys.stderr)
    return 0


def _write_atomically(path: Path, text: str) -> None:
    """Whole or absent: a job started while the manifest is rewritten never reads half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MountError(f"cannot write {path}: {exc.strerror}") from None
