"""TPU-pod experiments: Llama 3.2 1B and Llama 3 8B as pi_0, LSC AND against the raw sum.

Each builder returns the ``fdl.Config`` of an ``Experiment`` sized for one Cloud TPU slice;
``validate(config)`` lowers its learner programs on the devices at hand (e.g. 8 simulated CPU
devices) without any weights, so a preset's shapes and sharding rules are checked before a pod
is booked. The weights are a placeholder path to set on the command line::

    python launch/train.py --config config:tpu_pod_8b \\
        --config set:task.weights=/gcs/my-bucket/Meta-Llama-3-8B-Instruct --workdir /gcs/my-bucket/runs/8b

Memory per chip, for N parameters: the trained policy in float32 with AdamW's two moments is
12N bytes, its gradient 4N and the frozen reference 4N, so 20N bytes sharded over
``fsdp x model`` chips (the ``data`` axis replicates them), plus activations (bf16, one
recomputed layer at a time with ``remat="full"``) and the sampler's KV cache, split over
``data x fsdp`` (batch) and ``model`` (KV heads).
"""

from __future__ import annotations

import dataclasses

import fiddle as fdl
import jax
from jax.sharding import Mesh

from alignment.experiment import Experiment, MeshSpec, PretrainedTask, RewardModelSpec
from alignment.models import DecoderConfig, get_config
from alignment.parallel import make_mesh
from alignment.rl import OptimizerConfig, ReferenceConfig, RolloutConfig
from alignment.rl.lowering import LearnerLowering, lower_learner

from .experiments import learner, reward_training, runs

# The decoder settings of every preset: bf16 activations and matmul inputs, float32 parameters
# and optimizer state, each layer recomputed in the backward pass.
DECODER = {"dtype": "bfloat16", "param_dtype": "float32", "remat": "full"}
KL_COEFS = (0.01, 0.03, 0.1, 0.3)
PROMPT_TOKENS, RESPONSE_TOKENS = 256, 256


def _learner(learning_rate: float, **fields) -> fdl.Config:
    """64 prompts x 4 samples a step of 256 tokens after prompts of 256, warmed up over 10 steps."""
    return learner(prompts_per_step=64, num_samples=4,
                   rollout=fdl.Config(RolloutConfig, max_prompt_length=PROMPT_TOKENS, max_new_tokens=RESPONSE_TOKENS),
                   optimizer=fdl.Config(OptimizerConfig, learning_rate=learning_rate, warmup_steps=10),
                   log_every=5, checkpoint_every=50, **fields)


def _experiment(name: str, model: str, weights: str, mesh: fdl.Config, learner: fdl.Config) -> fdl.Config:
    return fdl.Config(
        Experiment,
        name=name,
        task=fdl.Config(PretrainedTask, model=model, decoder_overrides=dict(DECODER), weights=weights, alignment_prompts=4096, eval_prompts=512,
                        eval_samples=2),
        runs=runs(KL_COEFS),
        learner=learner,
        reward_models=fdl.Config(RewardModelSpec, batch_size=64, max_length=PROMPT_TOKENS + RESPONSE_TOKENS,
                                 train=reward_training(1e-5, 1000, warmup_steps=20)),
        reference=fdl.Config(ReferenceConfig, num_samples=16, batch_prompts=16),
        mesh=mesh,
    )


def tpu_pod_1b() -> fdl.Config:
    """Llama 3.2 1B Instruct on a v4-32 slice (16 chips, 32 GiB HBM each, 4 hosts).

    Mesh data=4 x fsdp=4 x model=1: the 20N = 25 GB of trained and frozen state is sharded 4
    ways (about 6 GB a chip) and all-gathered within groups of 4 chips; at width 2048 the layers
    are too small for tensor parallelism to pay. A step: 64 prompts x 4 samples = 256 responses
    of up to 256 tokens, 4 optimizer steps of 64 responses in 2 microbatches (2 rows a chip).
    """
    return _experiment(
        "tpu_pod_1b", "llama3.2-1b", "/gcs/YOUR_BUCKET/Llama-3.2-1B-Instruct",
        fdl.Config(MeshSpec, data=4, fsdp=4, model=1),
        _learner(2e-6, minibatches=4, microbatches=2, num_steps=400),
    )


def tpu_pod_8b() -> fdl.Config:
    """Llama 3 8B Instruct on a v4-64 slice (32 chips, 32 GiB HBM each, 8 hosts).

    Mesh data=2 x fsdp=8 x model=2: the 20N = 160 GB of state is sharded 16 ways (about 10 GB a
    chip). The model axis splits heads, MLP units and vocabulary, so each decoding step
    all-gathers (over fsdp) and reads half of every weight matrix on a chip rather than all of
    it (sampling dominates a step), and it halves the logits of the 128k vocabulary. A step: 64 prompts x 4 samples = 256
    responses, 4 optimizer steps of 64 responses in 4 microbatches (1 row a batch shard).
    """
    return _experiment(
        "tpu_pod_8b", "llama3-8b", "/gcs/YOUR_BUCKET/Meta-Llama-3-8B-Instruct",
        fdl.Config(MeshSpec, data=2, fsdp=8, model=2),
        _learner(1e-6, minibatches=4, microbatches=4, num_steps=300),
    )


def decoder_config(task: PretrainedTask, **overrides) -> DecoderConfig:
    """The task's decoder preset with its ``decoder_overrides`` and then ``overrides`` applied."""
    return get_config(task.model, **{**task.decoder_overrides, **overrides})


def shrink(spec: MeshSpec, num_devices: int) -> MeshSpec:
    """The same kinds of parallelism on ``num_devices``: the largest axis halves until the axes
    multiply to ``num_devices`` (data=2, fsdp=8, model=2 -> 2, 2, 2 on 8 devices)."""
    sizes = dataclasses.asdict(spec)
    if any(size < 1 for size in sizes.values()):
        raise ValueError(f"shrink needs explicit axis sizes, got {spec}")
    while (total := sizes["data"] * sizes["fsdp"] * sizes["model"]) > num_devices:
        largest = max(sizes, key=sizes.get)
        if sizes[largest] % 2:
            raise ValueError(f"cannot shrink {spec} to {num_devices} devices: halving {largest}={sizes[largest]}")
        sizes[largest] //= 2
    if total != num_devices:
        raise ValueError(f"cannot shrink {spec} to {num_devices} devices: the axes multiply to {total}")
    return MeshSpec(**sizes)


def validate(config: fdl.Config, mesh: Mesh | None = None, **decoder_overrides) -> dict[str, LearnerLowering]:
    """Builds ``config`` and lowers its learner programs on ``mesh`` (default: the preset's
    layout ``shrink``-ed to the local devices); ``{algorithm: LearnerLowering}``.

    One lowering per algorithm of the runs (PPO with a value model of its own backbone, as the
    runner builds it): a run's utility and KL weight do not change the programs' shapes.
    ``decoder_overrides`` replace decoder fields (e.g. ``num_layers`` for a quicker check).
    """
    experiment = fdl.build(config)
    if not isinstance(experiment.task, PretrainedTask):
        raise TypeError(f"validate needs a PretrainedTask experiment; {experiment.name!r} has a {type(experiment.task).__name__}")
    if mesh is None:
        if experiment.mesh is None:
            raise ValueError(f"experiment {experiment.name!r} has no mesh layout: pass mesh=")
        mesh = make_mesh(**dataclasses.asdict(shrink(experiment.mesh, jax.device_count())))
    decoder = decoder_config(experiment.task, **decoder_overrides)
    learners = {learner.algorithm: learner for learner in (run.learner_config(experiment.learner) for run in experiment.runs)}
    return {
        algorithm: lower_learner(decoder, learner, mesh, value="separate" if learner.algorithm_spec.critic else None)
        for algorithm, learner in learners.items()
    }
