#!/usr/bin/env bash
# Runs `systemd-analyze verify` on the units in systemd/ (or in the folder given).
# The units name /usr/local/bin/omicsfs, and verify fails when an Exec binary is missing, which
# it would be on a machine where omicsfs is not installed system-wide (CI). So the units are
# verified as installed copies would be, from a temporary folder with that path pointed at this
# checkout's .venv/bin/omicsfs (OMICSFS_BIN overrides). Everything else is verified as written.
# Usage: bash scripts/verify-units.sh [UNIT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
units="${1:-systemd}"
bin="${OMICSFS_BIN:-$PWD/.venv/bin/omicsfs}"
if [ ! -x "$bin" ]; then
    echo "verify-units: $bin is missing (run: bash scripts/setup.sh)" >&2
    exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for unit in "$units"/*.service; do
    sed "s#/usr/local/bin/omicsfs#$bin#g" "$unit" > "$work/$(basename "$unit")"
done
cd "$work"
# verify prints problems but exits 0 for some of them (unknown keys, bad values): fail on any output.
out="$(systemd-analyze verify --man=no ./*.service 2>&1)" || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
    echo "$out" >&2
    exit 1
fi
echo "verify-units: $(ls | tr '\n' ' ')ok"
