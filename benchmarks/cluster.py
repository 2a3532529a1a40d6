"""A cluster on one machine: many mounts of one account's quotas, with and without manifests and a
shared cache (README.md, "Running on a cluster").

Run from the repository root as root (or a user who may mount FUSE); nothing else needs to run::

    .venv/bin/python benchmarks/cluster.py [--mounts 16] [--read-sets 64] [--pairs 100000]
        [--part-size 1M] [--regions 4] [--faults 'preset=aws;bandwidth=100MiB'] [--label NAME]

One ``omicsfs serve`` (``--part-size``, data loaded without faults, then ``--faults`` set through
its admin route: the real service's quotas as rate limits, and bandwidth per connection) holds
one sequence store of ``--read-sets`` indexed read sets, alternately BAM and CRAM (one
simulated sample from ``omicsfs.sample.data.make_sample`` uploaded again and again: every read
set has its own ID and parts, so nothing is shared by accident), and the reference they are
aligned to. ``--mounts`` mounts run as separate processes on separate mount points. Mount ``m``
takes read sets ``m, m + mounts, ...`` and, like a workflow engine finding its inputs, first
runs ``ls -l`` on the store folder, then ``samtools view -c`` of ``--regions`` seeded random
10 kb regions on each of its read sets (CRAMs with ``-T`` the mounted reference). All mounts run
at once, one thread each.

Two runs:

``today``
    No manifest, no sharing: each mount has its own private ``--cache-dir`` and the default
    per-mount rates (each the account's whole quota).
``cohort``
    ``omicsfs manifest`` once (its calls are reported apart), then every mount with
    ``--manifest``, one ``--cache-dir`` shared by all with ``--cache-dir-shared``, and
    ``--get-read-set-tps`` / ``--get-reference-tps`` / ``--metadata-tps`` at the quota divided by
    the number of mounts.

Reported per run: API calls by operation from the first mount's start to the last count (as the
service counted them, throttled ones included; the manifest's own calls are reported apart),
throttles the service answered, errors surfaced to samtools (non-zero exits; must be 0), the
data calls (GetReadSet + GetReference) against the distinct parts touched (from the blocks in
the cache dirs, mapped to parts), bytes the service sent, and wall time from the first ``ls -l``
to the last count. The counts of every query must equal samtools on the local files.

``--mounts 2 --read-sets 4 --pairs 5000 --regions 2`` is a smoke run of a minute or two. The full
run (16 mounts, 64 read sets) takes a while on two cores, mostly in the ``today`` run.

Results: a markdown table on stdout, ``benchmarks/results/cluster.md`` and ``cluster.json``
(``cluster-LABEL.*`` with ``--label``). Mounts are always unmounted, the service stopped and the
temporary folder removed, also on failure.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness import MIB, Mount, Service, aws_env, log

from omicsfs.cli.options import size
from omicsfs.sample.data import SampleFiles, make_sample
from omicsfs.sample.load import ROLE_ARN, stage, upload

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
STORE = "cohort"
SEED = 20240611
REGION_LENGTH = 10_000
#: The account's quotas (https://docs.aws.amazon.com/omics/latest/dev/service-quotas.html).
QUOTA = {"metadata": 5.0, "GetReadSet": 30.0, "GetReference": 10.0}
DATA_OPERATIONS = ("GetReadSet", "GetReference")


@dataclass(frozen=True)
class ReadSet:
    id: str
    name: str
    file_type: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.{self.file_type.lower()}"


@dataclass
class Dataset:
    sample: SampleFiles
    store_id: str
    read_sets: list[ReadSet]
    regions: list[str]
    expected: dict[tuple[str, str], int]  # (file type, region) -> reads


@dataclass
class RunResult:
    name: str
    wall_seconds: float
    requests: dict[str, int]
    throttles: dict[str, int]
    bytes_sent: int
    samtools_errors: int
    ls_failures: int
    wrong_counts: int
    data_calls: int
    distinct_parts: int
    queries: int
    mount_problems: list[str] = field(default_factory=list)
    manifest_calls: dict[str, int] = field(default_factory=dict)


# -- the service and its data --------------------------------------------------------------------


def set_faults(service: Service, spec: str) -> None:
    request = urllib.request.Request(f"{service.url}/_omicsfs/faults", data=spec.encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def load(service: Service, folder: Path, count: int, pairs: int, regions: int) -> Dataset:
    log(f"making a sample of {pairs} read pairs and loading {count} read sets ...")
    sample = make_sample(folder / "sample", pairs=pairs)
    omics = service.client()
    reference_store = omics.create_reference_store(name="references")
    uris = stage(service.s3_root, [sample.reference], "cluster")
    job = omics.start_reference_import_job(
        referenceStoreId=reference_store["id"], roleArn=ROLE_ARN,
        sources=[{"sourceFile": uris[sample.reference], "name": "genome"}],
    )  # fmt: skip
    service.drain()
    done = omics.get_reference_import_job(referenceStoreId=reference_store["id"], id=job["id"])
    reference_id = done["sources"][0]["referenceId"]
    arn = omics.get_reference_metadata(referenceStoreId=reference_store["id"], id=reference_id)["arn"]
    store = omics.create_sequence_store(name=STORE)

    def one(index: int) -> ReadSet:
        file_type = "BAM" if index % 2 == 0 else "CRAM"
        path = sample.bam if file_type == "BAM" else sample.cram
        name = f"rs{index:03d}"
        fields = {"name": name, "sampleId": f"S{index:03d}", "subjectId": f"P{index:03d}",
                  "referenceArn": arn}
        read_set_id = upload(omics, store["id"], file_type, {"SOURCE1": path}, service.part_size, **fields)
        return ReadSet(read_set_id, name, file_type)

    with ThreadPoolExecutor(4) as pool:
        read_sets = list(pool.map(one, range(count)))
    service.drain()
    rng = random.Random(SEED)
    contigs = {"chr1": 50_000, "chr2": 30_000}  # make_sample's genome
    chosen = []
    for _ in range(regions):
        contig = rng.choice(sorted(contigs))
        start = rng.randrange(1, contigs[contig] - REGION_LENGTH)
        chosen.append(f"{contig}:{start}-{start + REGION_LENGTH}")
    expected = {}
    for file_type, path in (("BAM", sample.bam), ("CRAM", sample.cram)):
        for region in chosen:
            out = subprocess.run(["samtools", "view", "-c", "-T", str(sample.reference), str(path), region],
                                 check=True, capture_output=True, text=True).stdout  # fmt: skip
            expected[(file_type, region)] = int(out)
    return Dataset(sample, store["id"], read_sets, chosen, expected)


# -- one run -------------------------------------------------------------------------------------


def distinct_parts(cache_dirs: list[Path], part_size: int) -> int:
    """Parts touched, from the blocks the cache dirs hold (``<kind>/<id>/<digest>/<file>.<bs>.<n>``)."""
    parts = set()
    for cache in cache_dirs:
        for path in (cache / "parts").rglob("*"):
            pieces = path.name.split(".")
            if not path.is_file() or len(pieces) != 3 or not pieces[2].isdigit():
                continue
            kind, object_id = path.parent.parent.parent.name, path.parent.parent.name
            part = int(pieces[2]) * int(pieces[1]) // part_size
            parts.add((kind, object_id, pieces[0], part))
    return len(parts)


def work(mount: Mount, share: list[ReadSet], data: Dataset, errors: Counter[str], wrong: Counter[str]) -> int:
    """One node's job: find the inputs (``ls -l``), then the region counts; returns queries run.
    ``errors`` counts failures by their last stderr line (``ls -l`` apart), ``wrong`` wrong counts."""
    store = mount.path / "sequence-stores" / STORE
    reference = mount.path / "reference-stores" / "references" / "genome.fasta"
    listed = subprocess.run(["ls", "-l", str(store)], capture_output=True, text=True)
    if listed.returncode != 0:
        errors["ls -l"] += 1
    queries = 0
    for read_set in share:
        for region in data.regions:
            done = subprocess.run(
                ["samtools", "view", "-c", "-T", str(reference), str(store / read_set.file_name), region],
                capture_output=True, text=True,
            )  # fmt: skip
            queries += 1
            if done.returncode != 0:
                errors[done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "exit"] += 1
            elif int(done.stdout) != data.expected[(read_set.file_type, region)]:
                wrong[read_set.id] += 1
    return queries


def run(name: str, service: Service, data: Dataset, folder: Path, mounts: int, cohort: bool) -> RunResult:
    log(f"== {name}: {mounts} mounts, {len(data.read_sets)} read sets")
    shared_cache = folder / f"{name}-cache"
    extra: list[str] = []
    manifest_calls: dict[str, int] = {}
    if cohort:
        manifest = folder / "cohort.json"
        service.reset_stats()
        done = subprocess.run(
            [sys.executable, "-m", "omicsfs", "manifest", "--endpoint-url", service.url, "-o", str(manifest),
             "--sequence-store", STORE],
            capture_output=True, text=True, env=aws_env(),
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"omicsfs manifest failed: {done.stderr}")
        manifest_calls = service.requests()
        log(f"   manifest: {done.stderr.strip()}")
        per = {key: rate / mounts for key, rate in QUOTA.items()}
        extra = ["--manifest", str(manifest), "--cache-dir", str(shared_cache), "--cache-dir-shared",
                 "--metadata-tps", f"{per['metadata']:g}", "--get-read-set-tps", f"{per['GetReadSet']:g}",
                 "--get-reference-tps", f"{per['GetReference']:g}"]  # fmt: skip
    started: list[Mount] = []
    cache_dirs = [shared_cache] if cohort else [folder / f"{name}-cache-{m}" for m in range(mounts)]
    service.reset_stats()  # from here on: mounting counts too (today's pre-mount probes)
    try:
        for m in range(mounts):
            own = [] if cohort else ["--cache-dir", str(cache_dirs[m])]
            # metadata_tps None: the mount's own default (the whole quota) unless extra sets it
            started.append(Mount(folder / f"{name}-mnt-{m}", service.url, *extra, *own, metadata_tps=None))
        errors: Counter[str] = Counter()
        wrong: Counter[str] = Counter()
        shares = [data.read_sets[m::mounts] for m in range(mounts)]
        begin = time.monotonic()
        with ThreadPoolExecutor(mounts) as pool:
            queries = sum(pool.map(lambda m: work(started[m], shares[m], data, errors, wrong), range(mounts)))
        wall = time.monotonic() - begin
        stats = service.admin("GET", "stats")
        problems = [line for mount in started for line in mount.problems()]
    finally:
        for mount in started:
            mount.stop()
    requests = {op: n for op, n in stats["requests"].items() if n}
    throttles = {op: codes.get("ThrottlingException", 0) for op, codes in stats["errors"].items()}
    throttles = {op: n for op, n in throttles.items() if n}
    bytes_sent = sum(stats["bytesSent"].get(op, 0) for op in DATA_OPERATIONS)
    result = RunResult(
        name=name, wall_seconds=wall, requests=requests, throttles=throttles, bytes_sent=bytes_sent,
        samtools_errors=sum(n for what, n in errors.items() if what != "ls -l"),
        ls_failures=errors["ls -l"], wrong_counts=sum(wrong.values()),
        data_calls=sum(requests.get(op, 0) - throttles.get(op, 0) for op in DATA_OPERATIONS),
        distinct_parts=distinct_parts(cache_dirs, service.part_size), queries=queries,
        mount_problems=problems[:20], manifest_calls=manifest_calls,
    )  # fmt: skip
    if errors:
        log(f"   samtools errors: {dict(errors)}")
    log(f"   {wall:.1f} s, {queries} queries, {result.samtools_errors} errors, {result.wrong_counts} wrong")
    return result


# -- report --------------------------------------------------------------------------------------


def table(results: list[RunResult], args: argparse.Namespace) -> str:
    ops = sorted({op for r in results for op in r.requests})
    rows = [
        ("wall time (s)", [f"{r.wall_seconds:.1f}" for r in results]),
        ("samtools queries", [str(r.queries) for r in results]),
        ("errors surfaced to samtools", [str(r.samtools_errors) for r in results]),
        ("counts different from local samtools", [str(r.wrong_counts) for r in results]),
        ("ls -l of the store failed", [str(r.ls_failures) for r in results]),
        ("data calls answered (GetReadSet + GetReference)", [str(r.data_calls) for r in results]),
        ("distinct parts touched", [str(r.distinct_parts) for r in results]),
        ("bytes sent by the service (MiB)", [f"{r.bytes_sent / MIB:.1f}" for r in results]),
        ("throttles answered by the service", [str(sum(r.throttles.values())) for r in results]),
    ]
    rows += [(f"calls: {op}", [str(r.requests.get(op, 0)) for r in results]) for op in ops]
    rows += [(f"throttled: {op}", [str(r.throttles.get(op, 0)) for r in results])
             for op in sorted({op for r in results for op in r.throttles})]  # fmt: skip
    header = "| | " + " | ".join(r.name for r in results) + " |\n|---|" + "---|" * len(results) + "\n"
    body = "".join(f"| {label} | " + " | ".join(values) + " |\n" for label, values in rows)
    setup = (
        f"{args.mounts} mounts, {args.read_sets} read sets (BAM/CRAM, {args.pairs} pairs each), parts of"
        f" {args.part_size // 1024} KiB, {args.regions} regions per read set, faults `{args.faults}`"
    )
    manifest = next((r.manifest_calls for r in results if r.manifest_calls), {})
    note = f"\n`omicsfs manifest`, once, before the cohort run: {manifest}\n" if manifest else ""
    return f"{setup}\n\n{header}{body}{note}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mounts", type=int, default=16)
    parser.add_argument("--read-sets", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=100_000, help="read pairs of the simulated sample")
    parser.add_argument("--part-size", type=size, default=1 * MIB)
    parser.add_argument("--regions", type=int, default=4, help="region counts per read set")
    parser.add_argument("--faults", default="preset=aws;bandwidth=100MiB")
    parser.add_argument("--only", choices=["today", "cohort"], action="append")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="omicsfs-cluster-"))
    service = None
    try:
        service = Service(folder / "service", args.part_size)
        data = load(service, folder, args.read_sets, args.pairs, args.regions)
        set_faults(service, args.faults)
        results = []
        for name in args.only or ["today", "cohort"]:
            results.append(run(name, service, data, folder, args.mounts, cohort=name == "cohort"))
    finally:
        if service is not None:
            service.stop()
        shutil.rmtree(folder, ignore_errors=True)
    report = table(results, args)
    print(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = "cluster" + (f"-{args.label}" if args.label else "")
    (RESULTS_DIR / f"{stem}.md").write_text(f"# benchmarks/cluster.py\n\n{report}")
    (RESULTS_DIR / f"{stem}.json").write_text(
        json.dumps({"args": vars(args), "results": [r.__dict__ for r in results]}, indent=2, default=str)
    )
    # Today's run may surface errors (that is what it shows); the cohort run must not, and no
    # count may ever be wrong.
    bad = sum(r.wrong_counts for r in results) + sum(
        r.samtools_errors + r.ls_failures for r in results if r.name == "cohort"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

