#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, run and test omicsfs, then creates .venv
# with the package and its test extras. Shared by .ci/run and scripts/demo.sh so the two README
# commands install the same things. Idempotent: apt runs only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# fuse3 (fusermount3, mount.fuse3), libfuse3-dev + pkg-config (pyfuse3 builds against them),
# samtools/tabix (the demo's commands, the mount tests), attr (getfattr), python3-venv,
# systemd (systemd-analyze, to verify the units in systemd/), rclone and s3fs (real S3 tools the
# tests mount the local service's S3 access endpoint with), rsync (the copy-tool tests),
# htslib-test (htslib's own CRAMs and references, which tests/references decodes through the
# mount's by-md5 view).
need_apt=""
for cmd in samtools fusermount3 pkg-config getfattr systemd-analyze rclone s3fs rsync; do
    command -v "$cmd" >/dev/null 2>&1 || need_apt=1
done
for pkg in libfuse3-dev python3-venv htslib-test; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt=1
done
if [ -n "$need_apt" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        fuse3 libfuse3-dev pkg-config samtools tabix attr python3-venv systemd rclone s3fs rsync \
        htslib-test >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# workflow: Snakemake, for examples/cohort-snakemake and its test (tests/cluster).
.venv/bin/python -m pip install -q -e ".[test,workflow]" >/dev/null
