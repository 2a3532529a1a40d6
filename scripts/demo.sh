#!/usr/bin/env bash
# README's first command: installs what a fresh Debian machine lacks (scripts/setup.sh, as CI
# does), then runs the demo: sample data in a local HealthOmics service, mounted at ./omics
# (or the folder given), until Ctrl-C.
# Usage: bash scripts/demo.sh [MOUNTPOINT] [--data-dir DIR]
set -euo pipefail
here="$PWD"
bash "$(dirname "$0")/setup.sh"
cd "$here"
exec "$(dirname "$0")/../.venv/bin/omicsfs" demo "$@"
