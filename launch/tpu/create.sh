#!/usr/bin/env bash
# Creates the TPU slice, copies this repository to every worker and installs it with JAX for TPU.
#   TPU_TYPE=v4-32 launch/tpu/create.sh          (the tpu_pod_1b preset's slice)
set -euo pipefail
source "$(dirname "$0")/common.sh"
gcloud compute tpus tpu-vm create "$TPU_NAME" --zone "$TPU_ZONE" --accelerator-type "$TPU_TYPE" --version "$TPU_VERSION"
root="$(cd "$(dirname "$0")/../.." && pwd)"
tar -C "$root" --exclude=.git --exclude='*.egg-info' --exclude=runs -czf /tmp/alignment-src.tgz .
gcloud compute tpus tpu-vm scp /tmp/alignment-src.tgz "$TPU_NAME":alignment-src.tgz --zone "$TPU_ZONE" --worker=all
on_all_workers "mkdir -p $REPO_DIR && tar -xzf alignment-src.tgz -C $REPO_DIR && cd $REPO_DIR \
  && python3 -m pip install -q 'jax[tpu]' && python3 -m pip install -q -e ."
