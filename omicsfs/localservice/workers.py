"""Background work: ingesting read sets and references, and running the four kinds of jobs.

Every state change is written to the database as it happens, so clients polling Get*Job or
GetReadSetMetadata see the real sequence (SUBMITTED → IN_PROGRESS → COMPLETED…, per item
NOT_STARTED → IN_PROGRESS → FINISHED | FAILED; read sets PROCESSING_UPLOAD → ACTIVE |
UPLOAD_FAILED, ARCHIVED → ACTIVATING → ACTIVE). Heavy work (copies, htslib) runs in threads;
the database is touched only from the event loop. ``resume`` restarts whatever a killed process
left unfinished.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from omicsfs.localservice import processing
from omicsfs.localservice.blobs import commit_file, copy_file, tmp_sibling
from omicsfs.localservice.context import Service
from omicsfs.localservice.errors import (
    ConflictException,
    ResourceNotFoundException,
    ServiceError,
    ValidationException,
)
from omicsfs.localservice.s3.objects import object_version

log = logging.getLogger(__name__)

FILE_EXTENSIONS = {"BAM": "bam", "UBAM": "bam", "CRAM": "cram", "FASTQ": "fastq.gz"}
INDEX_EXTENSIONS = {"BAM": "bam.bai", "CRAM": "cram.crai"}


class ItemFailed(Exception):
    """One source of a job failed; the message becomes the item's statusMessage."""


# --------------------------------------------------------------------------------------------
# References by ARN


def require_reference_arn(svc: Service, arn: str) -> dict[str, Any]:
    """The reference an ARN names, or ResourceNotFoundException."""
    _, _, resource = arn.partition(":referenceStore/")
    store_id, _, ref_id = resource.partition("/reference/")
    doc = svc.state.get("reference", ref_id) if ref_id else None
    if doc is None or doc["referenceStoreId"] != store_id or doc["arn"] != arn:
        raise ResourceNotFoundException(f"The reference {arn} does not exist.")
    return doc


def require_reference_for(svc: Service, file_type: str, arn: str | None, where: str) -> None:
    """BAM and CRAM need a referenceArn naming an existing reference; uBAM and FASTQ may name one.

    "Aligned read sets require a reference genome to align genomic sequences, but it's optional
    for unaligned read sets" (https://docs.aws.amazon.com/omics/latest/dev/manage-sequence-store.html).
    Uploads and import jobs both check it when they are started, so nothing is created.
    """
    if arn:
        require_reference_arn(svc, arn)
    elif file_type in processing.ALIGNED_TYPES:
        raise ValidationException(
            f"{where}: a {file_type} read set is aligned and needs a referenceArn "
            "(only FASTQ and UBAM may have none)."
        )


def reference_files(svc: Service, arn: str | None) -> processing.ReferenceFiles | None:
    """The files of the reference an ARN names, or None (no ARN, or deleted since)."""
    if not arn:
        return None
    try:
        doc = require_reference_arn(svc, arn)
    except ResourceNotFoundException:
        return None
    return processing.ReferenceFiles(
        arn=arn,
        fasta=svc.blobs.file("reference", doc["id"], "source"),
        contigs=svc.blobs.file("reference", doc["id"], "contigs"),
    )


# --------------------------------------------------------------------------------------------
# Read sets


def _one_component(name: str | None, fallback: str) -> str:
    """Names may hold "/" or be ".."; an object name must stay one path component."""
    base = (name or "").replace("/", "_").replace("\0", "_").strip()
    return fallback if base in ("", ".", "..") else base


def file_names(doc: dict[str, Any]) -> dict[str, str]:
    """The names a read set's files get in exports and in the fallback location."""
    ext = FILE_EXTENSIONS[doc["fileType"]]
    base = _one_component(doc.get("name"), doc["id"])
    names = {"source1": f"{base}.{ext}"}
    if doc["fileType"] == "FASTQ" and "source2" in doc.get("_sources", []):
        names = {"source1": f"{base}_1.{ext}", "source2": f"{base}_2.{ext}"}
    if doc["fileType"] in INDEX_EXTENSIONS:
        names["index"] = f"{base}.{INDEX_EXTENSIONS[doc['fileType']]}"
    return names


def object_names(doc: dict[str, Any]) -> dict[str, str]:
    """The object names of a read set's files under its S3 access prefix, as the real service
    gives them (https://docs.aws.amazon.com/omics/latest/dev/s3-access.html, "Amazon S3 URI
    structure"): an imported file keeps its source's name (``_sourceNames``), with ``_source1``
    / ``_source2`` inserted before the extension when a FASTQ pair's names are the same; a
    direct upload is ``<name>_source1.fastq.gz`` (and ``_source2``) for FASTQ and
    ``<name>.bam`` / ``<name>.cram`` otherwise; the index is the source's name plus ``.bai`` or
    ``.crai``."""
    sources = [s for s in ("source1", "source2") if s in doc.get("_sources", ["source1"])]
    imported = doc.get("_sourceNames") or {}
    if imported:
        names = {s: _one_component(imported.get(s), f"{doc['id']}_{s}") for s in sources}
        if len(sources) == 2 and names["source1"] == names["source2"]:
            names = {s: _insert_before_extension(names[s], f"_{s}") for s in sources}
    else:
        base = _one_component(doc.get("name"), doc["id"])
        if doc["fileType"] == "FASTQ":
            names = {s: f"{base}_{s}.fastq.gz" for s in sources}
        else:
            names = {"source1": f"{base}.{FILE_EXTENSIONS[doc['fileType']]}"}
    if doc["fileType"] in INDEX_EXTENSIONS:
        names["index"] = f"{names['source1']}.{INDEX_EXTENSIONS[doc['fileType']].rsplit('.', 1)[1]}"
    return names


def _insert_before_extension(name: str, text: str) -> str:
    for ext in (".fastq.gz", ".fq.gz", ".fastq", ".fq"):
        if name.endswith(ext):
            return name[: -len(ext)] + text + ext
    stem, dot, ext = name.rpartition(".")
    return f"{stem}{text}.{ext}" if dot and stem else name + text


def new_read_set(
    svc: Service,
    ident: str,
    store_id: str,
    fields: dict[str, Any],
    creation_type: str,
    sources: list[str],
    creation_job_id: str | None = None,
) -> dict[str, Any]:
    """A read set's document (not yet saved), from upload or import-source fields."""
    store = svc.require("sequenceStore", store_id)
    doc: dict[str, Any] = {
        "id": ident,
        "arn": f"{store['arn']}/readSet/{ident}",
        "sequenceStoreId": store_id,
        "subjectId": fields["subjectId"],
        "sampleId": fields["sampleId"],
        "status": "PROCESSING_UPLOAD",
        "name": fields.get("name"),
        "description": fields.get("description"),
        "fileType": fields["sourceFileType"],
        "creationTime": svc.now(),
        "referenceArn": fields.get("referenceArn"),
        "creationType": creation_type,
        "creationJobId": creation_job_id,
        "_generatedFrom": fields.get("generatedFrom"),
        "_sources": sources,
    }
    return doc


async def replace_read_set_file(
    svc: Service, store_id: str, read_set_id: str, file: str, content: bytes
) -> dict[str, Any]:
    """Swaps the stored bytes of one file of an ACTIVE read set (an admin route, for tests).

    The real service recompresses stored files as it tiers them ("bitwise equivalence ... isn't
    preserved", https://docs.aws.amazon.com/omics/latest/dev/sequence-stores.html), so "the Amazon
    S3 ETag, which is based on bitwise identity, may change"
    (https://docs.aws.amazon.com/omics/latest/dev/s3-access.html) while the HealthOmics etag,
    which names the content, stays. Here the object keeps its key and gets a new ETag, size and
    Last-Modified, GetReadSet serves the new bytes, and the read set's etag is left alone. A
    download already under way keeps reading the old file, which the rename keeps until closed.
    """
    svc.require("sequenceStore", store_id)
    doc = svc.require("readSet", read_set_id, parent=store_id)
    if doc["status"] != "ACTIVE":
        raise ConflictException(f"Read set {read_set_id} is {doc['status']}, not ACTIVE.")
    info = (doc.get("files") or {}).get(file)
    if info is None:
        raise ResourceNotFoundException(f"Read set {read_set_id} has no {file} file.")
    path = svc.blobs.file("readSet", read_set_id, file)
    part_size = svc.config.part_size
    version = await asyncio.to_thread(_write_version, path, content, part_size, svc.now())
    doc = svc.require("readSet", read_set_id, parent=store_id)  # as it is now, after the await
    info = doc["files"][file]
    info.update(contentLength=len(content), totalParts=max(1, math.ceil(len(content) / part_size)))
    doc.setdefault("_s3Objects", {})[file] = version
    svc.state.put("readSet", read_set_id, doc, parent=store_id)
    return doc


def _write_version(path: Path, content: bytes, part_size: int, when: str) -> dict[str, str]:
    tmp = tmp_sibling(path)
    tmp.write_bytes(content)
    commit_file(tmp, path)
    return object_version(path, part_size, when)


def save_read_set(svc: Service, doc: dict[str, Any], tags: dict[str, str] | None) -> None:
    with svc.state.transaction():
        svc.state.put("readSet", doc["id"], doc, parent=doc["sequenceStoreId"])
        svc.state.set_tags(doc["arn"], tags or {})


async def ingest_read_set(svc: Service, doc: dict[str, Any]) -> dict[str, Any]:
    """Validates, stamps, indexes and counts a read set's stored sources (in a thread).

    Returns the document fields that become visible once the read set is ACTIVE; raises
    processing.InvalidInput when the bytes are not the declared file type.
    """
    store = svc.require("sequenceStore", doc["sequenceStoreId"])
    sources = {name: svc.blobs.file("readSet", doc["id"], name) for name in doc["_sources"]}
    index = svc.blobs.file("readSet", doc["id"], "index")
    provenance = (
        f"HealthOmics local service: sequenceStore={store['id']} readSet={doc['id']} ingested={svc.now()}"
    )
    result = await asyncio.to_thread(
        processing.process_read_set,
        sources,
        doc["fileType"],
        store.get("eTagAlgorithmFamily", "MD5up"),
        index,
        provenance,
        reference_files(svc, doc.get("referenceArn")),
    )
    names = object_names(doc)
    files, versions = {}, {}
    part_size = svc.config.part_size
    written = svc.now()
    for name, path in {**sources, **({"index": result.index} if result.index else {})}.items():
        size = path.stat().st_size
        files[name] = {
            "totalParts": max(1, math.ceil(size / part_size)),
            "partSize": part_size,
            "contentLength": size,
            "s3Access": {"s3Uri": f"{store['s3Access']['s3Uri']}readSet/{doc['id']}/{names[name]}"},
        }
        versions[name] = await asyncio.to_thread(object_version, path, part_size, written)
    info = dict(result.sequence_information)
    if doc.get("_generatedFrom"):
        info["generatedFrom"] = doc["_generatedFrom"]
    return {"files": files, "etag": result.etag, "sequenceInformation": info, "_s3Objects": versions}


async def process_read_set(svc: Service, read_set_id: str) -> None:
    """PROCESSING_UPLOAD → ACTIVE or UPLOAD_FAILED, after ``--processing-delay``."""
    await svc.processing_step()
    doc = svc.state.get("readSet", read_set_id)
    if doc is None or doc["status"] != "PROCESSING_UPLOAD":
        return
    try:
        fields = await ingest_read_set(svc, doc)
        failure = None
    except processing.InvalidInput as exc:
        failure = str(exc)
    current = svc.state.get("readSet", read_set_id)
    if current is None:  # deleted while processing
        svc.blobs.remove("readSet", read_set_id)
        return
    if failure is None:
        current.update(fields, status="ACTIVE")
        log.info("read set %s is ACTIVE", read_set_id)
    else:
        current.update(status="UPLOAD_FAILED", statusMessage=failure[:255])
        log.info("read set %s failed processing: %s", read_set_id, failure)
        await _to_fallback(svc, current)
    svc.state.put("readSet", read_set_id, current, parent=current["sequenceStoreId"])


async def _to_fallback(svc: Service, doc: dict[str, Any]) -> None:
    """Failed uploads' files go to the store's fallbackLocation when one is set (as in AWS)."""
    store = svc.state.get("sequenceStore", doc["sequenceStoreId"]) or {}
    location = store.get("fallbackLocation")
    if not location:
        return
    try:
        folder = svc.blobs.s3_path(location.rstrip("/") + f"/{doc['id']}")
    except ServiceError:
        return
    if not svc.blobs.bucket_exists(location):
        log.warning(
            "fallbackLocation %s: the bucket does not exist; files of %s not copied", location, doc["id"]
        )
        return
    for name in doc["_sources"]:
        source = svc.blobs.file("readSet", doc["id"], name)
        await asyncio.to_thread(copy_file, source, folder / file_names(doc)[name])


# --------------------------------------------------------------------------------------------
# Jobs


ItemHandler = Callable[[dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]


async def _run_job(svc: Service, kind: str, job_id: str, items_key: str, handle: ItemHandler) -> None:
    """Drives a job through its states, one item at a time, saving every transition."""
    await svc.processing_step()
    job = svc.state.get(kind, job_id)
    if job is None or job["status"] not in ("SUBMITTED", "IN_PROGRESS"):
        return
    parent = job.get("sequenceStoreId") or job.get("referenceStoreId")
    job["status"] = "IN_PROGRESS"
    svc.state.put(kind, job_id, job, parent=parent)
    for item in job[items_key]:
        if item["status"] in ("FINISHED", "FAILED"):
            continue
        item["status"] = "IN_PROGRESS"
        svc.state.put(kind, job_id, job, parent=parent)
        try:
            item.update(await handle(job, item))
            item["status"] = "FINISHED"
        except (ItemFailed, processing.InvalidInput, ServiceError) as exc:
            item["status"] = "FAILED"
            item["statusMessage"] = str(exc)[:127]
        except OSError as exc:
            item["status"] = "FAILED"
            item["statusMessage"] = f"I/O error: {exc.strerror or exc}"[:127]
        svc.state.put(kind, job_id, job, parent=parent)
    failed = sum(1 for item in job[items_key] if item["status"] == "FAILED")
    if failed == 0:
        job["status"] = "COMPLETED"
    elif failed == len(job[items_key]):
        job["status"] = "FAILED"
        job["statusMessage"] = "Every source failed; see the per-source statusMessage."
    else:
        job["status"] = "COMPLETED_WITH_FAILURES"
        job["statusMessage"] = f"{failed} of {len(job[items_key])} sources failed."
    job["completionTime"] = svc.now()
    svc.state.put(kind, job_id, job, parent=parent)
    log.info("%s %s finished: %s", kind, job_id, job["status"])


def _source_path(svc: Service, uri: str) -> Path:
    path = svc.blobs.s3_path(uri)
    if not path.is_file():
        raise ItemFailed(f"The source {uri} does not exist.")
    return path


async def run_import_job(svc: Service, job_id: str) -> None:
    async def handle(job: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        sources = {"source1": _source_path(svc, item["sourceFiles"]["source1"])}
        if "source2" in item["sourceFiles"]:
            if item["sourceFileType"] != "FASTQ":
                raise ItemFailed("source2 is only accepted for FASTQ.")
            sources["source2"] = _source_path(svc, item["sourceFiles"]["source2"])
        ident = svc.state.new_id("readSet")
        source_names = {name: item["sourceFiles"][name].rstrip("/").rsplit("/", 1)[-1] for name in sources}
        try:
            for name, path in sources.items():
                # The same checks as an upload's: plain FASTQ fails here as it does there.
                await asyncio.to_thread(copy_file, path, svc.blobs.file("readSet", ident, name))
            # An imported read set is listed only once it is ACTIVE.
            draft = new_read_set(svc, ident, job["sequenceStoreId"], item, "IMPORT", list(sources), job["id"])
            draft["_sourceNames"] = source_names
            fields = await ingest_read_set(svc, draft)
        except BaseException:
            svc.blobs.remove("readSet", ident)
            raise
        draft.update(fields, status="ACTIVE", creationTime=svc.now())
        save_read_set(svc, draft, item.get("tags"))
        return {"readSetId": ident}

    await _run_job(svc, "importJob", job_id, "sources", handle)


async def run_export_job(svc: Service, job_id: str) -> None:
    async def handle(job: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        doc = svc.state.get("readSet", item["id"])
        if doc is None:
            raise ItemFailed(f"Read set {item['id']} no longer exists.")
        if doc["status"] != "ACTIVE":
            raise ItemFailed(f"Read set {item['id']} is {doc['status']}, not ACTIVE.")
        folder = svc.blobs.s3_path(job["destination"].rstrip("/") + f"/{doc['id']}")
        if not svc.blobs.bucket_exists(job["destination"]):
            raise ItemFailed(f"NoSuchBucket: the bucket of {job['destination']} does not exist.")
        for name, object_name in file_names(doc).items():
            if name in doc.get("files", {}):
                source = svc.blobs.file("readSet", doc["id"], name)
                await asyncio.to_thread(copy_file, source, folder / object_name)
        return {}

    await _run_job(svc, "exportJob", job_id, "readSets", handle)


async def run_activation_job(svc: Service, job_id: str) -> None:
    async def handle(job: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        doc = svc.state.get("readSet", item["readSetId"])
        if doc is None:
            raise ItemFailed(f"Read set {item['readSetId']} no longer exists.")
        if doc["status"] not in ("ARCHIVED", "ACTIVATING"):
            raise ItemFailed(f"Read set {doc['id']} is {doc['status']}, not ARCHIVED.")
        doc["status"] = "ACTIVATING"
        svc.state.put("readSet", doc["id"], doc, parent=doc["sequenceStoreId"])
        await svc.processing_step()
        doc = svc.state.get("readSet", item["readSetId"])
        if doc is None:
            raise ItemFailed(f"Read set {item['readSetId']} was deleted while activating.")
        doc["status"] = "ACTIVE"
        svc.state.put("readSet", doc["id"], doc, parent=doc["sequenceStoreId"])
        return {}

    await _run_job(svc, "activationJob", job_id, "sources", handle)


async def run_reference_import_job(svc: Service, job_id: str) -> None:
    async def handle(job: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        source = _source_path(svc, item["sourceFile"])
        store = svc.require("referenceStore", job["referenceStoreId"])
        ident = svc.state.new_id("reference")
        stored = svc.blobs.file("reference", ident, "source")
        index = svc.blobs.file("reference", ident, "index")
        contigs = svc.blobs.file("reference", ident, "contigs")
        try:
            result = await asyncio.to_thread(processing.process_reference, source, stored, index, contigs)
        except BaseException:
            svc.blobs.remove("reference", ident)
            raise
        now = svc.now()
        part_size = svc.config.part_size
        doc = {
            "id": ident,
            "arn": f"{store['arn']}/reference/{ident}",
            "referenceStoreId": store["id"],
            "md5": result.md5,
            "status": "ACTIVE",
            "name": item["name"],
            "description": item.get("description"),
            "creationTime": now,
            "updateTime": now,
            "creationType": "IMPORT",
            "creationJobId": job["id"],
            "files": {
                name: {
                    "totalParts": max(1, math.ceil(size / part_size)),
                    "partSize": part_size,
                    "contentLength": size,
                }
                for name, size in (("source", result.source_size), ("index", result.index_size))
            },
        }
        with svc.state.transaction():
            svc.state.put("reference", ident, doc, parent=store["id"])
            svc.state.set_tags(doc["arn"], item.get("tags") or {})
        return {"referenceId": ident}

    await _run_job(svc, "referenceImportJob", job_id, "sources", handle)


# --------------------------------------------------------------------------------------------
# Restart


def resume(svc: Service) -> None:
    """Restarts the background work a killed process left behind, and sweeps its debris."""
    state = svc.state
    known = {
        "readSet": [d["id"] for d in state.docs("readSet")],
        "reference": [d["id"] for d in state.docs("reference")],
    }
    uploads = [d["uploadId"] for d in state.docs("upload")]
    svc.blobs.sweep_orphans(known, uploads)
    for doc in state.docs("upload"):
        if doc.pop("_completing", None):
            # Completion was cut short before the read set was recorded: the upload is still
            # whole (parts are deleted only after the read set row commits), so reopen it.
            state.put("upload", doc["uploadId"], doc, parent=doc["sequenceStoreId"])
    for doc in state.docs("readSet"):
        if doc["status"] == "PROCESSING_UPLOAD":
            svc.spawn(process_read_set(svc, doc["id"]), f"process read set {doc['id']}")
    runners: dict[str, Callable[[str], Coroutine[Any, Any, None]]] = {
        "importJob": lambda i: run_import_job(svc, i),
        "exportJob": lambda i: run_export_job(svc, i),
        "activationJob": lambda i: run_activation_job(svc, i),
        "referenceImportJob": lambda i: run_reference_import_job(svc, i),
    }
    for kind, run in runners.items():
        for job in state.docs(kind):
            if job["status"] in ("SUBMITTED", "IN_PROGRESS"):
                log.info("resuming %s %s", kind, job["id"])
                svc.spawn(run(job["id"]), f"{kind} {job['id']}")
