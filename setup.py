"""Installable package for the alignment framework (see README.md)."""

from setuptools import find_packages, setup

JAX_STACK = [
    "jax>=0.8",
    "flax>=0.12",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    # Named experiment configs (configs/ in the repository).
    "fiddle>=0.3",
    "numpy>=1.26",
    # Student's t and exact binomial tests of the evaluation's decision rules.
    "scipy>=1.11",
    # Real weights and tokenizers from local files (no downloads at run time).
    "gguf>=0.10",
    "safetensors>=0.4",
    "tokenizers>=0.20",
    # Chat templates are the models' own Jinja templates, rendered in jinja2's sandbox.
    "jinja2>=3.1.6",
    # Training logs: TensorBoard event files without TensorFlow, and a progress bar.
    "tensorboardX>=2.6",
    "tqdm>=4.66",
    # Cross-process locks: one build of a sandbox cache entry, and JAX's persistent compilation
    # cache shared safely by the processes of a host (JAX locks it only when filelock is present).
    "filelock>=3.12",
    # The launcher's flags (Fiddle's --config commands are absl flags) and the report's plots.
    "absl-py>=2.1",
    "matplotlib>=3.8",
]

EXTRAS = {
    # seqio tasks and TFDS builders over local preference files.
    # Lower bounds checked together with jax 0.10 / numpy 2 (tests/test_data_seqio.py passes):
    # seqio 0.0.19 pins protobuf<=3.20.3; sentencepiece 0.2.3 (a seqio dependency) is generated
    # with protobuf 7.36 and fails to import on an older runtime, which TF < 2.21 forces;
    # tensorflow-datasets 4.9.10 is the oldest checked (4.9.7 did not import in one try).
    "seqio": [
        "tensorflow-cpu>=2.21",
        "seqio>=0.0.20",
        "tensorflow-datasets>=4.9.10",
        "importlib_resources>=6.0",
        "protobuf>=7.36",
        "googleapis-common-protos>=1.76",
        # rlax (a [test] dependency) imports TensorFlow Probability, which needs tf_keras as soon
        # as TensorFlow is installed.
        "tf-keras>=2.21",
    ],
    "test": [
        "pytest>=8.0",
        # The suite runs on every core (`-n auto`).
        "pytest-xdist>=3.6",
        "hypothesis>=6.100",
        # The learner's GAE, clipped surrogate and KL pieces are tested against rlax's.
        "rlax>=0.1.6",
        # The quickstart notebook runs headless in the tests.
        "nbclient>=0.10",
        "nbformat>=5.10",
        "ipykernel>=6.29",
    ],
    # Numerical parity checks and side-by-side benchmarks against torch + transformers.
    # On CPU-only machines install the CPU build of torch first.
    # The side-by-side peer of benchmarks/rl_step_smollm2.py (TRL's RLOO trainer; with [parity]).
    "trl": [
        "trl>=1.16,<2; python_version >= '3.11'",
        "datasets>=4.7",
        # TRL's LoRA side of benchmarks/lora_smollm2.py.
        "peft>=0.17",
    ],
    "parity": [
        "torch>=2.3",
        "transformers>=4.45",
        # transformers' own GGUF loader (the SmolLM2 parity test's reference) needs accelerate.
        "accelerate>=1.0",
    ],
}

setup(
    name="alignment",
    version="0.1.0",
    description=(
        "JAX-native alignment with reward models: log-sigmoid-centred reward transforms, "
        "logical-AND aggregation of several reward models, models, sampling, preference data "
        "and reward-model training."
    ),
    # The library, plus the repository's configs/ and launch/ folders installed as the
    # subpackages alignment.configs and alignment.launch (no top-level package with a generic
    # name such as "configs" lands in site-packages).
    packages=[*find_packages(include=["alignment", "alignment.*"]), "alignment.configs", "alignment.launch"],
    package_dir={"alignment.configs": "configs", "alignment.launch": "launch"},
    entry_points={"console_scripts": ["alignment-train = alignment.launch.train:run"]},
    python_requires=">=3.10",
    install_requires=JAX_STACK,
    extras_require=EXTRAS,
)
