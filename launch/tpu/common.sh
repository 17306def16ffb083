# Settings shared by the Cloud TPU scripts; override any of them in the environment.
#   TPU_NAME      the slice's name                  (default: alignment-pod)
#   TPU_ZONE      its zone                          (default: us-central2-b)
#   TPU_TYPE      accelerator type                  (default: v4-64, the tpu_pod_8b preset's slice)
#   TPU_VERSION   the TPU VM software version       (default: tpu-ubuntu2204-base)
#   REPO_DIR      where the repository lives on every worker (default: ~/alignment)
TPU_NAME="${TPU_NAME:-alignment-pod}"
TPU_ZONE="${TPU_ZONE:-us-central2-b}"
TPU_TYPE="${TPU_TYPE:-v4-64}"
TPU_VERSION="${TPU_VERSION:-tpu-ubuntu2204-base}"
REPO_DIR="${REPO_DIR:-alignment}"

on_all_workers() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$TPU_ZONE" --worker=all --command "$1"
}
