"""Read-set import, export and activation jobs, and reference import jobs.

Start* records the job as SUBMITTED and returns at once; ``workers`` moves it through its states
in the background. Bad input that can be seen at once (an S3 URI outside the S3 root, an unknown
read set or reference) fails the Start call; a source file that is missing or not the declared
format fails only its item, as in the real service.
"""

from __future__ import annotations

from typing import Any

from omicsfs.localservice import workers
from omicsfs.localservice.context import JOB_FILTER, Call, Service, apply_filter, operation, pick

_JOB_START = ("id", "sequenceStoreId", "referenceStoreId", "roleArn", "destination", "status", "creationTime")
_JOB_ITEM = (*_JOB_START, "completionTime")


def _start(svc: Service, kind: str, parent_field: str, parent: str, doc: dict[str, Any]) -> dict[str, Any]:
    ident = svc.state.new_id(kind)
    doc.update(id=ident, status="SUBMITTED", creationTime=svc.now(), **{parent_field: parent})
    svc.state.put(kind, ident, doc, parent=parent)
    return doc


def _list(svc: Service, kind: str, parent: str, params: dict[str, Any], result_key: str) -> dict[str, Any]:
    items = apply_filter(svc.state.docs(kind, parent), params.get("filter"), JOB_FILTER)
    page, token = svc.paginate(items, params, f"{kind}/{parent}")
    return {result_key: [pick(j, *_JOB_ITEM) for j in page], "nextToken": token}


def _require_read_sets(svc: Service, store_id: str, ids: list[str]) -> None:
    for ident in ids:
        svc.require("readSet", ident, parent=store_id)


# -- read-set import --------------------------------------------------------------------------


@operation("StartReadSetImportJob")
async def start_import(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("sequenceStore", params["sequenceStoreId"])
    sources = []
    for index, item in enumerate(params["sources"]):
        for uri in item["sourceFiles"].values():
            svc.blobs.s3_path(uri)
        workers.require_reference_for(
            svc, item["sourceFileType"], item.get("referenceArn"), f"sources[{index}]"
        )
        sources.append({**item, "status": "NOT_STARTED"})
    doc = _start(
        svc, "importJob", "sequenceStoreId", store["id"], {"roleArn": params["roleArn"], "sources": sources}
    )
    svc.spawn(workers.run_import_job(svc, doc["id"]), f"import job {doc['id']}")
    return pick(doc, *_JOB_START)


@operation("GetReadSetImportJob")
async def get_import(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    svc.require("sequenceStore", params["sequenceStoreId"])
    return svc.require("importJob", params["id"], parent=params["sequenceStoreId"])


@operation("ListReadSetImportJobs")
async def list_imports(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("sequenceStore", params["sequenceStoreId"])
    return _list(svc, "importJob", store["id"], params, "importJobs")


# -- read-set export --------------------------------------------------------------------------


@operation("StartReadSetExportJob")
async def start_export(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("sequenceStore", params["sequenceStoreId"])
    svc.blobs.s3_path(params["destination"])
    ids = [s["readSetId"] for s in params["sources"]]
    _require_read_sets(svc, store["id"], ids)
    doc = _start(
        svc, "exportJob", "sequenceStoreId", store["id"],
        {
            "destination": params["destination"],
            "roleArn": params["roleArn"],
            "readSets": [{"id": i, "status": "NOT_STARTED"} for i in ids],
        },
    )  # fmt: skip
    svc.spawn(workers.run_export_job(svc, doc["id"]), f"export job {doc['id']}")
    return {k: v for k, v in pick(doc, *_JOB_START).items() if k != "roleArn"}


@operation("GetReadSetExportJob")
async def get_export(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    svc.require("sequenceStore", params["sequenceStoreId"])
    doc = svc.require("exportJob", params["id"], parent=params["sequenceStoreId"])
    return {k: v for k, v in doc.items() if k != "roleArn"}


@operation("ListReadSetExportJobs")
async def list_exports(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("sequenceStore", params["sequenceStoreId"])
    result = _list(svc, "exportJob", store["id"], params, "exportJobs")
    for item in result["exportJobs"]:
        item.pop("roleArn", None)
    return result


# -- activation ------------------------------------------------------------------------------


@operation("StartReadSetActivationJob")
async def start_activation(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("sequenceStore", params["sequenceStoreId"])
    ids = [s["readSetId"] for s in params["sources"]]
    _require_read_sets(svc, store["id"], ids)
    doc = _start(
        svc, "activationJob", "sequenceStoreId", store["id"],
        {"sources": [{"readSetId": i, "status": "NOT_STARTED"} for i in ids]},
    )  # fmt: skip
    svc.spawn(workers.run_activation_job(svc, doc["id"]), f"activation job {doc['id']}")
    return pick(doc, *_JOB_START)


@operation("GetReadSetActivationJob")
async def get_activation(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    svc.require("sequenceStore", params["sequenceStoreId"])
    return svc.require("activationJob", params["id"], parent=params["sequenceStoreId"])


@operation("ListReadSetActivationJobs")
async def list_activations(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("sequenceStore", params["sequenceStoreId"])
    return _list(svc, "activationJob", store["id"], params, "activationJobs")


# -- reference import ------------------------------------------------------------------------


@operation("StartReferenceImportJob")
async def start_reference_import(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("referenceStore", params["referenceStoreId"])
    for item in params["sources"]:
        svc.blobs.s3_path(item["sourceFile"])
    doc = _start(
        svc, "referenceImportJob", "referenceStoreId", store["id"],
        {
            "roleArn": params["roleArn"],
            "sources": [{**item, "status": "NOT_STARTED"} for item in params["sources"]],
        },
    )  # fmt: skip
    svc.spawn(workers.run_reference_import_job(svc, doc["id"]), f"reference import job {doc['id']}")
    return pick(doc, *_JOB_START)


@operation("GetReferenceImportJob")
async def get_reference_import(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    svc.require("referenceStore", params["referenceStoreId"])
    return svc.require("referenceImportJob", params["id"], parent=params["referenceStoreId"])


@operation("ListReferenceImportJobs")
async def list_reference_imports(svc: Service, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    store = svc.require("referenceStore", params["referenceStoreId"])
    return _list(svc, "referenceImportJob", store["id"], params, "importJobs")


def running_jobs(svc: Service, kinds: tuple[str, ...], parent: str) -> int:
    return sum(
        1
        for kind in kinds
        for job in svc.state.docs(kind, parent)
        if job["status"] in ("SUBMITTED", "IN_PROGRESS")
    )
