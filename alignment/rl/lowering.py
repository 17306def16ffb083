"""The learner's programs lowered for a model and a mesh, from shapes alone (no weights).

``lower_learner(decoder_config, learner_config, mesh)`` builds the policy, the reference, the
value model and the optimizer abstractly (``nnx.eval_shape``), gives every parameter and
optimizer leaf the sharding its logical axes get under ``rules``
(``alignment.models.partitioning.abstract_state``), and lowers (traces to StableHLO, without
compiling) the three programs of a learner step that carry the model:

* ``update``: one optimizer step on a minibatch of ``batch_size / minibatches`` responses, with
  the learner's loss (``policy_loss``) and its ``microbatches``;
* ``sample``: the sampler's generation program for ``batch_size`` prompts;
* ``reference``: log pi_0 (and, with a critic, the values) of a rollout of ``batch_size`` responses.

So a configuration's shapes, its sharding rules and the programs are checked on any mesh in
seconds, for a model of any size (an 8B model lowers on a laptop); memory is not checked (that
needs ``lowered.compile().memory_analysis()`` on the target devices).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx
from flax.traverse_util import flatten_dict
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from alignment.models import lora
from alignment.models.config import DecoderConfig
from alignment.models.decoder import Decoder
from alignment.models.heads import ValueModel
from alignment.models.partitioning import abstract_state, state_shardings
from alignment.parallel import DEFAULT_RULES, logical_sharding
from alignment.rl.config import LearnerConfig, make_optimizer
from alignment.rl.programs import Trainable, UpdateBatch, policy_loss, base_policy_pass
from alignment.sampling import Sampler
from alignment.training.steps import make_train_step

VALUE_MODELS = ("shared", "separate")


@dataclasses.dataclass(frozen=True)
class LearnerLowering:
    """The lowered programs (``jax.stages.Lowered``: ``.as_text()``, ``.compile()``) and the
    trainable parameters' ``{path: (shape, PartitionSpec)}`` (e.g. ``"policy/layers/q"``)."""

    update: object
    sample: object
    reference: object
    parameters: dict[str, tuple[tuple[int, ...], PartitionSpec]]


def lower_learner(
    decoder_config: DecoderConfig,
    learner_config: LearnerConfig,
    mesh: Mesh,
    rules=DEFAULT_RULES,
    *,
    value: str | None = None,
) -> LearnerLowering:
    """Lowers the update, sampling and reference programs of a ``Learner`` (module docstring).

    ``value``: the critic of an algorithm that has one (PPO), "shared" (a head on the policy's
    backbone) or "separate" (its own backbone); ignored by the others, as in the ``Learner``.
    """
    c = learner_config
    prompt_length = c.rollout.max_prompt_length
    if value not in (None, *VALUE_MODELS):
        raise ValueError(f"unknown value model {value!r}; valid: {', '.join(VALUE_MODELS)} (or None without PPO)")
    if c.algorithm_spec.critic and value is None:
        raise ValueError(f"{c.algorithm} needs a value model: pass value= one of {', '.join(VALUE_MODELS)}")
    rules = tuple(rules)
    trainable, reference, optimizer = abstract_learner(decoder_config, c, mesh, rules, value=value)
    shardings = state_shardings(nnx.state((trainable, optimizer)), mesh, rules)
    step = make_train_step(
        functools.partial(policy_loss, config=c, prompt_length=prompt_length, rules=rules),
        lora.trainable(trainable), shardings, microbatches=c.microbatches, reduction="sum",
    )
    replicated = jax.ShapeDtypeStruct((), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec()))
    with jax.set_mesh(mesh):
        update = step.lower(trainable, optimizer, rollout_shapes(c, c.batch_size // c.minibatches, mesh, rules), replicated)
        rollout = rollout_shapes(c, c.batch_size, mesh, rules)
        base_def, base_state = (None, None) if reference is None else nnx.split(reference)
        trainable_def, trainable_state = nnx.split(trainable)
        reference_program = jax.jit(functools.partial(base_policy_pass, prompt_length=prompt_length), static_argnums=(0, 1))
        reference_lowered = reference_program.lower(base_def, trainable_def, base_state, trainable_state,
                                                    rollout.tokens, rollout.prompt_mask, rollout.response_mask)
    # Token ids are constants of the sampling program: their values do not change its shapes.
    sampler = Sampler(c.rollout.sampler_config(eos_ids=(1,), pad_id=0, batch_sizes=(c.batch_size,)), mesh=mesh, rules=rules)
    sample = sampler.lower(trainable.policy, c.batch_size, prompt_length)
    return LearnerLowering(update, sample, reference_lowered, parameter_shardings(trainable))


def abstract_learner(
    decoder_config: DecoderConfig, learner_config: LearnerConfig, mesh: Mesh, rules=DEFAULT_RULES, *, value: str | None = None
) -> tuple[Trainable, Decoder | None, nnx.Optimizer]:
    """The learner's trainable models, reference (``None`` with LoRA: the policy with its
    adapters off) and optimizer with ``ShapeDtypeStruct`` leaves placed by ``rules`` on
    ``mesh``: nothing is allocated."""

    def build():
        policy = Decoder(decoder_config, rngs=nnx.Rngs(0), rules=rules)
        reference = None if learner_config.lora else Decoder(decoder_config, rngs=nnx.Rngs(1), rules=rules)
        critic = None
        if learner_config.algorithm_spec.critic:
            backbone = policy if value == "shared" else Decoder(decoder_config, rngs=nnx.Rngs(2), rules=rules)
            critic = ValueModel(backbone, rngs=nnx.Rngs(3))
        trainable = Trainable(policy, critic)
        if learner_config.lora:
            trainable.add_adapters(learner_config.lora)
        return trainable, reference, nnx.Optimizer(trainable, make_optimizer(learner_config), wrt=lora.trainable(trainable))

    graphdef, state = nnx.split(nnx.eval_shape(build))
    return nnx.merge(graphdef, abstract_state(state, mesh, rules))


def rollout_shapes(config: LearnerConfig, rows: int, mesh: Mesh, rules=DEFAULT_RULES) -> UpdateBatch:
    """An ``UpdateBatch`` of ``rows`` responses as ``ShapeDtypeStruct``s, rows over the logical
    "batch" axis: ``[rows, P + N]`` sequences and ``[rows, N]`` per-token arrays."""
    p, n = config.rollout.max_prompt_length, config.rollout.max_new_tokens

    def shaped(width, dtype):
        shape = (rows, width)
        return jax.ShapeDtypeStruct(shape, dtype, sharding=logical_sharding(mesh, ("batch", "length"), rules, shape=shape))

    tokens, masks = shaped(p + n, jnp.int32), shaped(p + n, bool)
    per_token = shaped(n, jnp.float32)
    return UpdateBatch(tokens, masks, masks, *(per_token,) * 6)


def parameter_shardings(model: nnx.Module) -> dict[str, tuple[tuple[int, ...], PartitionSpec]]:
    """``{"path/of/param": (shape, PartitionSpec)}`` of a model whose parameters carry a
    ``NamedSharding`` (real arrays or abstract ones)."""
    params = flatten_dict(nnx.to_pure_dict(nnx.state(model, nnx.Param)), sep="/")
    return {path: (tuple(x.shape), x.sharding.spec) for path, x in params.items()}
