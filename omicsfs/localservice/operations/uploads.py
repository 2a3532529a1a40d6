"""Multipart read-set upload: create, upload parts, complete, abort, list.

Parts are numbered per source (SOURCE1, SOURCE2); re-uploading a number replaces the part; the
checksum returned for a part (hex SHA-256 of its bytes) must be echoed by Complete. Complete
joins the parts into the read set's files and hands them to ``workers.process_read_set``:
the read set is PROCESSING_UPLOAD at once, then ACTIVE or UPLOAD_FAILED.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from omicsfs.localservice import workers
from omicsfs.localservice.blobs import concatenate, tmp_sibling
from omicsfs.localservice.context import (
    CREATED_BOUNDS,
    MAX_UPLOAD_PART_SIZE,
    Call,
    Service,
    apply_filter,
    operation,
    pick,
)
from omicsfs.localservice.errors import ConflictException, ValidationException

_UPLOAD_FIELDS = (
    "sequenceStoreId", "uploadId", "sourceFileType", "subjectId", "sampleId", "generatedFrom",
    "referenceArn", "name", "description", "tags", "creationTime",
)  # fmt: skip


@operation("CreateMultipartReadSetUpload")
async def create_upload(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("sequenceStore", params["sequenceStoreId"])
    workers.require_reference_for(
        svc, params["sourceFileType"], params.get("referenceArn"), "CreateMultipartReadSetUpload"
    )
    ident = svc.state.new_id("upload")
    doc = {
        "uploadId": ident,
        "sequenceStoreId": store["id"],
        "creationTime": svc.now(),
        **pick(params, *_UPLOAD_FIELDS[2:-1]),
    }
    svc.state.put("upload", ident, doc, parent=store["id"])
    return _with_required_fields(doc)


def _with_required_fields(upload: dict[str, Any]) -> dict[str, Any]:
    """The model marks ``referenceArn`` (and, in list items, ``generatedFrom``) required in upload
    outputs although both are optional inputs; an upload that has none answers ``""``, the value
    ListReadSets' filter uses for "no reference" (README "What it does")."""
    return {
        **upload,
        "referenceArn": upload.get("referenceArn") or "",
        "generatedFrom": upload.get("generatedFrom") or "",
    }


def _require_open_upload(svc: Service, params: dict[str, Any]) -> dict[str, Any]:
    svc.require("sequenceStore", params["sequenceStoreId"])
    doc = svc.require("upload", params["uploadId"], parent=params["sequenceStoreId"])
    if doc.get("_completing"):
        raise ConflictException(f"Upload {doc['uploadId']} is being completed.")
    return doc


@operation("UploadReadSetPart")
async def upload_part(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    upload = _require_open_upload(svc, params)
    source, number = params["partSource"], params["partNumber"]
    if source == "SOURCE2" and upload["sourceFileType"] != "FASTQ":
        raise ValidationException("SOURCE2 parts are only accepted for FASTQ uploads.")
    declared = params.get("_contentLength")
    if declared is None:
        raise ValidationException("UploadReadSetPart requires a Content-Length.")
    if declared > MAX_UPLOAD_PART_SIZE:
        raise ValidationException(
            f"Part size {declared} exceeds the maximum of {MAX_UPLOAD_PART_SIZE} bytes (100 MiB)."
        )
    path = svc.blobs.part_path(upload["uploadId"], source, number)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(path).with_name(f"{path.name}.{id(params)}.tmp")
    try:
        size = await _receive(params["_payload"], tmp)
        if size != declared:
            raise ValidationException(f"Received {size} bytes, Content-Length said {declared}.")
        checksum = await asyncio.to_thread(_sha256, tmp)
        # The upload may have been aborted or completed while the body streamed in.
        _require_open_upload(svc, params)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    svc.state.put_part(upload["uploadId"], source, number, size, checksum, svc.now())
    return {"checksum": checksum}


async def _receive(chunks: AsyncIterator[bytes], path: Any) -> int:
    size = 0
    with open(path, "wb") as out:  # noqa: ASYNC230  (local disk, one chunk at a time)
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_UPLOAD_PART_SIZE:
                raise ValidationException(
                    f"Part exceeds the maximum of {MAX_UPLOAD_PART_SIZE} bytes (100 MiB)."
                )
            out.write(chunk)
    return size


def _sha256(path: Any) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@operation("CompleteMultipartReadSetUpload")
async def complete_upload(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    upload = _require_open_upload(svc, params)
    uploaded = {(p["partSource"], p["partNumber"]): p for p in svc.state.parts(upload["uploadId"])}
    listed: set[tuple[str, int]] = set()
    for item in params["parts"]:
        key = (item["partSource"], item["partNumber"])
        if key in listed:
            raise ValidationException(f"Part {key[1]} of {key[0]} is listed twice.")
        listed.add(key)
        part = uploaded.get(key)
        if part is None:
            raise ValidationException(f"Part {key[1]} of {key[0]} was never uploaded.")
        if part["checksum"] != item["checksum"]:
            raise ValidationException(
                f"The checksum of part {key[1]} of {key[0]} does not match the uploaded part."
            )
    missing = sorted(set(uploaded) - listed)
    if missing:
        raise ValidationException(
            f"Uploaded parts are missing from the parts list: {missing[:5]} (every part must be listed)."
        )
    sources: dict[str, list[int]] = {}
    for source, number in sorted(listed):
        sources.setdefault(source, []).append(number)
    if "SOURCE1" not in sources:
        raise ValidationException("An upload needs at least one SOURCE1 part.")
    for source, numbers in sources.items():
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValidationException(f"{source} parts must be numbered 1..N without gaps: {numbers}")

    upload["_completing"] = True
    svc.state.put("upload", upload["uploadId"], upload, parent=upload["sequenceStoreId"])
    read_set_id = svc.state.new_id("readSet")
    try:
        for source, numbers in sources.items():
            paths = [svc.blobs.part_path(upload["uploadId"], source, n) for n in numbers]
            target = svc.blobs.file("readSet", read_set_id, source.lower())
            await asyncio.to_thread(concatenate, paths, target)
    except BaseException:
        svc.blobs.remove("readSet", read_set_id)
        upload.pop("_completing")
        svc.state.put("upload", upload["uploadId"], upload, parent=upload["sequenceStoreId"])
        raise
    doc = workers.new_read_set(
        svc, read_set_id, upload["sequenceStoreId"], upload, "UPLOAD", [s.lower() for s in sources]
    )
    with svc.state.transaction():
        workers.save_read_set(svc, doc, upload.get("tags"))
        svc.state.delete("upload", upload["uploadId"])
        svc.state.delete_parts(upload["uploadId"])
    svc.blobs.remove_upload(upload["uploadId"])
    svc.spawn(workers.process_read_set(svc, read_set_id), f"process read set {read_set_id}")
    return {"readSetId": read_set_id}


@operation("AbortMultipartReadSetUpload")
async def abort_upload(svc: Service, call: Call, params: dict[str, Any]) -> None:
    upload = _require_open_upload(svc, params)
    with svc.state.transaction():
        svc.state.delete("upload", upload["uploadId"])
        svc.state.delete_parts(upload["uploadId"])
    svc.blobs.remove_upload(upload["uploadId"])


@operation("ListMultipartReadSetUploads")
async def list_uploads(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("sequenceStore", params["sequenceStoreId"])
    items = [u for u in svc.state.docs("upload", store["id"]) if not u.get("_completing")]
    page, token = svc.paginate(items, params, f"ListMultipartReadSetUploads/{store['id']}")
    return {"uploads": [_with_required_fields(pick(u, *_UPLOAD_FIELDS)) for u in page], "nextToken": token}


@operation("ListReadSetUploadParts")
async def list_parts(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    upload = _require_open_upload(svc, params)
    parts = svc.state.parts(upload["uploadId"], params["partSource"])
    parts = apply_filter(parts, params.get("filter"), CREATED_BOUNDS)
    page, token = svc.paginate(
        parts,
        params,
        f"ListReadSetUploadParts/{upload['uploadId']}/{params['partSource']}",
        key=lambda p: (f"{p['partNumber']:05d}", ""),
    )
    return {"parts": page, "nextToken": token}
