#!/usr/bin/env bash
# Deletes the slice (billing stops).
set -euo pipefail
source "$(dirname "$0")/common.sh"
gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone "$TPU_ZONE" --quiet
