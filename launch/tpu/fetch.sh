#!/usr/bin/env bash
# Copies a run directory's report (written by worker 0, the primary process) to this machine.
#   launch/tpu/fetch.sh runs/8b            -> ./runs/8b/report/
set -euo pipefail
source "$(dirname "$0")/common.sh"
run="${1:?usage: launch/tpu/fetch.sh RUN_DIRECTORY (relative to the repository on the workers)}"
mkdir -p "$run"
gcloud compute tpus tpu-vm scp --recurse "$TPU_NAME:$REPO_DIR/$run/report" "$run/" --zone "$TPU_ZONE" --worker=0
