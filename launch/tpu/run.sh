#!/usr/bin/env bash
# Runs one experiment on every worker of the slice; the processes find each other through
# jax.distributed's TPU auto-detection (ALIGNMENT_AUTO_DISTRIBUTED=1, alignment.parallel.initialize).
#   launch/tpu/run.sh --config config:tpu_pod_8b --config set:task.weights=/path/on/workers --workdir runs/8b
# The weights path must be readable on every worker (e.g. a gcsfuse mount of a bucket).
set -euo pipefail
source "$(dirname "$0")/common.sh"
on_all_workers "cd $REPO_DIR && ALIGNMENT_AUTO_DISTRIBUTED=1 python3 launch/train.py $(printf '%q ' "$@")"
