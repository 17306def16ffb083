"""The RL learner: PPO, RLOO and GRPO on one utility, with a KL penalty to the base policy.

One ``Learner.train_step()``:

1. **sample**: G responses to each of ``prompts_per_step`` prompts from the policy (one compiled
   sampling program; the sampler also returns log pi_old of every token);
2. **score**: every reward function scores every response (``alignment.rl.scoring``); the
   utility ``U = Utility(rewards, r_ref)`` (``alignment.rl.utility``) is one number per
   response, and responses without EOS can be charged ``no_eos_penalty``;
3. **reference**: log pi_0 of every response token (and, for PPO, the values V(s_t));
4. **update**: advantages, then ``epochs x minibatches`` optimizer steps of one compiled program:

       rloo / grpo:  s_i = U_i - beta * KL_i   (KL_i = sum_t k1_t, when the KL is in the reward)
                     A_i = rloo(s) or group_normalized(s) over the G samples of a prompt
       ppo:          r_t = -beta * k1_t + U * [t = last token];  A_t, G_t = GAE(r, V; gamma, lambda)
       loss = mean_t clipped_surrogate(A_t) [+ beta * mean_t k3_t] [- c_H * mean_t H_t]
              [+ c_V * mean_t value_loss]         (means over the minibatch's response tokens)

Claim 1 of Wang et al. (arXiv 2402.00742), the gradient shape, is logged per property p for
responses below and above r_ref,p: ``utility_slope/...`` = mean dU/dr_p (exact, by autodiff:
sigmoid(r_ref - r) under LSC, 1 under the raw sum) and ``advantage_abs/...`` = mean |A|.
The KL coefficient beta is fixed or adapted towards ``kl_target`` after each step (``kl.py``).

Metrics stay on the device and are fetched every ``log_every`` steps (JSON lines, TensorBoard,
progress bar); each phase waits for its own results so that the step time splits by phase. A non-finite reward, utility, loss or gradient skips that update
(``optax.apply_if_finite``: the parameters stay finite) and raises ``FloatingPointError``
naming the step and the source once the step's flags are fetched, at the next sampling step's
host transfer or at the end of ``run``. Checkpoints (Orbax) hold the policy, the value model,
the optimizer, the KL coefficient, the RNG key, the step and the prompt stream's position, so
a resumed run continues exactly.

The mesh may span several processes (``alignment.parallel.initialize``): every process runs
the same learner on the same prompts and seed; response tokens, rewards, metrics and flags are
gathered to every process (``alignment.parallel.to_host``), host data goes back through
``from_host``, only process 0 writes metrics and shows the progress bar, and every process
saves its shards of the checkpoints (``tests/test_multihost.py``: two processes match one
process with two devices).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from alignment.models.decoder import Decoder
from alignment.models.heads import ValueModel
from alignment.models.layers import positions_from_mask
from alignment.models.partitioning import shard_model
from alignment.models.tokenizer import Tokenizer
from alignment.parallel import DEFAULT_RULES, from_host, is_primary, logical_sharding, to_host, with_logical_constraint
from alignment.rl import advantages as adv
from alignment.rl import kl
from alignment.rl.losses import clipped_surrogate, token_logprobs_and_entropy, value_loss
from alignment.rl.rollout import sample_groups
from alignment.rl.scoring import Chat, RewardFunction, score_all
from alignment.rl.utility import Utility
from alignment.sampling import Sampler, SamplerConfig, SamplingParams
from alignment.training.checkpointing import Checkpoints
from alignment.training.metrics import MetricsWriter
from alignment.training.steps import make_train_step, pin_to_mesh

ALGORITHMS = ("ppo", "rloo", "grpo")
KL_PLACEMENTS = ("reward", "loss")
SCHEDULES = ("constant", "cosine", "linear")


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Everything a learner run optimises and how.

    Attributes:
      algorithm: "ppo" (GAE with a value model), "rloo" (leave-one-out baseline) or "grpo"
        (group-normalised advantages).
      prompts_per_step, num_samples: a step samples ``num_samples`` (G) responses for each of
        ``prompts_per_step`` prompts.
      max_prompt_length: the prompts' padded length (one compiled shape; longer prompts are an
        error at construction).
      max_new_tokens, temperature, top_k, top_p: the sampler's settings.
      utility: the transform and aggregation of the rewards (``Utility``).
      no_eos_penalty: subtracted from the utility of responses that emit no EOS within
        ``max_new_tokens`` (``None``: keep them as they are); they are counted either way.
      kl_coef: beta, the KL weight (the initial one when ``kl_target`` is set).
      kl_in: "reward" (k1 per token, subtracted from the reward) or "loss" (k3 as a loss term).
      kl_target, kl_horizon: adapt beta towards this sequence KL (``None``: fixed beta).
      entropy_coef: weight of the entropy bonus.
      clip_epsilon: the surrogate's ratio clip.
      gamma, gae_lambda, value_coef, value_clip, whiten_advantages: PPO's GAE, value loss
        weight, value clipping (``None``: off) and advantage whitening.
      epochs, minibatches: passes over each rollout and optimizer steps per pass.
      microbatches: gradient accumulation inside each optimizer step.
      learning_rate, warmup_steps, schedule, weight_decay, max_grad_norm: AdamW after global
        norm clipping, linear warm-up then a constant, cosine or linear schedule over
        ``num_steps`` (learner steps; the optimizer steps ``epochs * minibatches`` per step).
      num_steps, seed, log_every, checkpoint_every: the run (``checkpoint_every=0``: only at the end).
    """

    algorithm: str = "rloo"
    prompts_per_step: int = 8
    num_samples: int = 4
    max_prompt_length: int = 64
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    utility: Utility = Utility()
    no_eos_penalty: float | None = None
    kl_coef: float = 0.05
    kl_in: str = "reward"
    kl_target: float | None = None
    kl_horizon: float = 10000.0
    entropy_coef: float = 0.0
    clip_epsilon: float = 0.2
    gamma: float = 1.0
    gae_lambda: float = 0.95
    value_coef: float = 0.5
    value_clip: float | None = 0.2
    whiten_advantages: bool = True
    epochs: int = 1
    minibatches: int = 1
    microbatches: int = 1
    learning_rate: float = 1e-5
    warmup_steps: int = 0
    schedule: str = "constant"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_steps: int = 100
    seed: int = 0
    log_every: int = 1
    checkpoint_every: int = 0

    def __post_init__(self):
        for name, valid in (("algorithm", ALGORITHMS), ("kl_in", KL_PLACEMENTS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in valid:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}")
        if self.algorithm in ("rloo", "grpo") and self.num_samples < 2:
            raise ValueError(f"{self.algorithm} needs num_samples >= 2 responses per prompt, got {self.num_samples}")
        rows = self.prompts_per_step * self.num_samples
        if rows % (self.minibatches * self.microbatches):
            raise ValueError(
                f"prompts_per_step * num_samples = {rows} responses must split into minibatches={self.minibatches} "
                f"x microbatches={self.microbatches} equal parts"
            )
        if self.kl_target is not None and not self.kl_target > 0:
            raise ValueError(f"kl_target must be > 0 (or None for a fixed coefficient), got {self.kl_target}")
        if not 0 <= self.warmup_steps <= self.num_steps:
            raise ValueError(f"need 0 <= warmup_steps <= num_steps, got {self.warmup_steps} and {self.num_steps}")

    @property
    def batch_size(self) -> int:
        """Responses per step, ``prompts_per_step * num_samples``."""
        return self.prompts_per_step * self.num_samples


def make_optimizer(config: LearnerConfig) -> optax.GradientTransformation:
    """AdamW after global-norm clipping on the configured schedule; non-finite updates are skipped."""
    total = max(config.num_steps * config.epochs * config.minibatches, 1)
    warmup = config.warmup_steps * config.epochs * config.minibatches
    decay = {
        "constant": optax.constant_schedule(config.learning_rate),
        "cosine": optax.cosine_decay_schedule(config.learning_rate, max(total - warmup, 1)),
        "linear": optax.linear_schedule(config.learning_rate, 0.0, max(total - warmup, 1)),
    }[config.schedule]
    schedule = optax.join_schedules([optax.linear_schedule(0.0, config.learning_rate, warmup), decay], [warmup]) if warmup else decay
    inner = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adamw(schedule, weight_decay=config.weight_decay))
    return optax.apply_if_finite(inner, max_consecutive_errors=2**31 - 1)


class PromptStream:
    """Prompt indices in a fresh seeded permutation every epoch; the position is one integer.

    ``indices(position, count)`` are the prompts number ``position .. position + count - 1`` of
    the endless stream, so a checkpoint only needs ``position`` to resume exactly.
    """

    def __init__(self, num_prompts: int, seed: int):
        if num_prompts < 1:
            raise ValueError("the learner needs at least one prompt")
        self.num_prompts, self.seed = num_prompts, seed

    def indices(self, position: int, count: int) -> np.ndarray:
        out = []
        while len(out) < count:
            epoch, offset = divmod(position + len(out), self.num_prompts)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_prompts)
            out.extend(order[offset : offset + count - len(out)].tolist())
        return np.asarray(out)


class Trainable(nnx.Module):
    """What the optimizer updates: the policy and, for PPO, the value model (own backbone, or a
    head on the policy's when its ``backbone`` is the policy)."""

    def __init__(self, policy: Decoder, value: ValueModel | None):
        self.policy = policy
        self.value = value

    @property
    def shared_value(self) -> bool:
        return self.value is not None and self.value.backbone is self.policy


class UpdateBatch(NamedTuple):
    """One rollout, ``[B, L]`` sequences and ``[B, N]`` per-response-token arrays."""

    tokens: jax.Array
    prompt_mask: jax.Array
    response_mask: jax.Array
    old_logprobs: jax.Array
    ref_logprobs: jax.Array
    advantages: jax.Array
    returns: jax.Array
    old_values: jax.Array


def response_hidden(model: Decoder, tokens, prompt_mask, response_mask, prompt_length: int):
    """Hidden states ``[B, N, D]`` of the states that emit response tokens 0 .. N-1 (columns P-1 .. L-2)."""
    valid = prompt_mask | response_mask
    hidden, _ = model.hidden_states(tokens[:, :-1], positions_from_mask(valid)[:, :-1], valid[:, :-1])
    return hidden[:, prompt_length - 1 :]


def response_values(trainable: Trainable, tokens, prompt_mask, response_mask, prompt_length: int, policy_hidden=None):
    """V(s_t) ``[B, N]`` from the value head on the policy's (or its own backbone's) hidden states."""
    value = trainable.value
    if trainable.shared_value:
        hidden = response_hidden(trainable.policy, tokens, prompt_mask, response_mask, prompt_length) if policy_hidden is None else policy_hidden
    else:
        hidden = response_hidden(value.backbone, tokens, prompt_mask, response_mask, prompt_length)
    return value.head(hidden)


def reference_pass(reference_def, trainable_def, reference_state, trainable_state, tokens, prompt_mask, response_mask, *, prompt_length: int):
    """log pi_0 of the response tokens and, for PPO, the values ``[B, N]`` (zeros without a value
    model); the graph definitions are the static arguments of its ``jax.jit``."""
    reference = nnx.merge(reference_def, reference_state)
    logits = reference.logits(response_hidden(reference, tokens, prompt_mask, response_mask, prompt_length))
    ref_logprobs, _ = token_logprobs_and_entropy(logits, tokens[:, prompt_length:])
    values = jnp.zeros_like(ref_logprobs)
    trainable = nnx.merge(trainable_def, trainable_state)
    if trainable.value is not None:
        values = response_values(trainable, tokens, prompt_mask, response_mask, prompt_length)
    return ref_logprobs, values


def policy_loss(trainable: Trainable, batch: UpdateBatch, kl_coef, token_norm, *, config: LearnerConfig, prompt_length: int, rules):
    """The minibatch loss (module docstring), normalised by ``token_norm`` response tokens;
    ``(loss, metrics)`` as ``make_train_step`` expects."""
    c, p = config, prompt_length
    mask = batch.response_mask[:, p:].astype(jnp.float32)
    hidden = response_hidden(trainable.policy, batch.tokens, batch.prompt_mask, batch.response_mask, p)
    hidden = with_logical_constraint(hidden, ("batch", "length", "embed"), rules)
    logprobs, entropy = token_logprobs_and_entropy(trainable.policy.logits(hidden), batch.tokens[:, p:])
    if c.entropy_coef == 0.0:
        entropy = jax.lax.stop_gradient(entropy)
    surrogate, clipped = clipped_surrogate(logprobs, batch.old_logprobs, batch.advantages, c.clip_epsilon)
    total = jnp.sum(surrogate * mask) - c.entropy_coef * jnp.sum(entropy * mask)
    kl_loss = kl.k3(logprobs, batch.ref_logprobs)
    if c.kl_in == "loss":
        total += kl_coef * jnp.sum(kl_loss * mask)
    metrics = {
        "policy_loss": adv.masked_mean(surrogate, mask),
        "clip_fraction": adv.masked_mean(clipped.astype(jnp.float32), mask),
        "entropy": adv.masked_mean(entropy, mask),
        "kl/k3_token": adv.masked_mean(kl_loss, mask),
    }
    if trainable.value is not None:
        values = response_values(trainable, batch.tokens, batch.prompt_mask, batch.response_mask, p, hidden)
        losses = value_loss(values, batch.old_values, batch.returns, c.value_clip)
        total += c.value_coef * jnp.sum(losses * mask)
        metrics["value_loss"] = adv.masked_mean(losses, mask)
    loss = total / token_norm
    return loss, {**metrics, "loss": loss}


def sampler_config(config: LearnerConfig, eos_ids: Sequence[int], pad_id: int) -> SamplerConfig:
    """The sampler of a learner step: one prompt bucket (``max_prompt_length``) and one batch
    bucket (``batch_size``), so that sampling is one compiled program."""
    return SamplerConfig(
        max_new_tokens=config.max_new_tokens, eos_ids=tuple(eos_ids), pad_id=pad_id,
        sampling=SamplingParams(temperature=config.temperature, top_k=config.top_k, top_p=config.top_p),
        prompt_buckets=(config.max_prompt_length,), batch_buckets=(config.batch_size,),
    )


class Learner:
    """Aligns ``policy`` to the utility of ``rewards`` with a KL penalty to ``reference``.

    Args:
      policy: the decoder to train (in place). With a ``mesh``, the policy, the reference and the
        value model are moved to the shardings their logical axes give under ``rules``; reward
        models stay where their ``ModelReward`` put them.
      reference: the frozen base policy pi_0 (a separate copy of the initial weights).
      tokenizer: the policy's tokenizer with its chat template and EOS id.
      rewards: reward functions (``alignment.rl.scoring``) that together score every property.
      prompts: the alignment prompts as chats (``[{"role": "user", "content": ...}]``).
      references: ``{property: r_ref [num_prompts]}`` (e.g. from the reference stage); needed
        by every transform but ``identity`` and, for every run, by the metrics that compare
        responses above and below r_ref.
      config: the ``LearnerConfig``.
      value_model: PPO's critic: a ``ValueModel`` with its own backbone, or one whose backbone
        is ``policy`` (a value head on the policy's hidden states). Ignored by RLOO and GRPO.
      mesh, rules: where the batch and the programs run.
      workdir: metrics and checkpoints go here (``None``: neither).
    """

    def __init__(
        self,
        policy: Decoder,
        reference: Decoder,
        tokenizer: Tokenizer,
        rewards: Sequence[RewardFunction],
        prompts: Sequence[Chat],
        references: Mapping[str, np.ndarray] | None,
        config: LearnerConfig,
        *,
        value_model: ValueModel | None = None,
        mesh: Mesh | None = None,
        rules=DEFAULT_RULES,
        workdir: str | Path | None = None,
    ):
        if reference is policy:
            raise ValueError("reference must be a separate copy of the base policy (the policy is trained in place)")
        if config.algorithm == "ppo" and value_model is None:
            raise ValueError("ppo needs a value_model: a ValueModel with its own backbone or with backbone=policy")
        self.config, self.tokenizer, self.mesh, self.rules = config, tokenizer, mesh, tuple(rules)
        self.reward_fns = tuple(rewards)
        self.properties = tuple(p for fn in self.reward_fns for p in fn.properties)
        if len(set(self.properties)) != len(self.properties):
            raise ValueError(f"each property must be scored by one reward function; got {list(self.properties)}")
        self.prompts = [list(chat) for chat in prompts]
        self.prompt_ids = self._encode_prompts()
        self.references = self._check_references(references)
        self.trainable = Trainable(policy, value_model if config.algorithm == "ppo" else None)
        if mesh is not None:  # each model where the logical rules put its parameters (a no-op if already there)
            for model in (self.trainable, reference):
                shard_model(model, mesh, self.rules)
        # The update donates the trainable buffers: own copies keep arrays shared with other
        # modules (e.g. a reference made by nnx.clone(policy)) alive.
        nnx.update(self.trainable, jax.tree.map(jnp.copy, nnx.state(self.trainable)))
        self.reference = reference
        self.optimizer = nnx.Optimizer(self.trainable, make_optimizer(config), wrt=nnx.Param)
        self.stream = PromptStream(len(self.prompts), config.seed)
        self.sampler = Sampler(sampler_config(config, (tokenizer.eos_id,), tokenizer.pad_id), mesh=mesh, rules=self.rules)
        self.step = 0
        self.position = 0
        self.kl_coef = self._on_mesh(np.float32(config.kl_coef), batch=False)
        key = jax.random.key(config.seed)
        self.key = key if mesh is None else jax.random.wrap_key_data(self._on_mesh(jax.random.key_data(key), batch=False))
        self._compilations = {"reference": 0, "advantages": 0}
        shardings = None if mesh is None else pin_to_mesh((self.trainable, self.optimizer), mesh)
        loss = functools.partial(policy_loss, config=config, prompt_length=self.sampler_prompt_length, rules=self.rules)
        self._update = make_train_step(loss, nnx.Param, shardings, microbatches=config.microbatches)
        self._reference_pass = jax.jit(self._trace_reference, static_argnums=(0, 1))
        self._advantages = jax.jit(self._trace_advantages)
        self.workdir = None if workdir is None else Path(workdir)
        self._writer = None
        self._checkpoints = None
        self._unchecked: list[tuple[int, dict]] = []  # (step, device flags) not yet fetched
        self._unlogged: list[tuple[int, dict, dict]] = []  # (step, device metrics, host timings)
        self.history: list[dict[str, float]] = []

    # ----------------------------------------------------------------------------- setup

    def _encode_prompts(self) -> list[list[int]]:
        ids = [self.tokenizer.encode(self.tokenizer.apply_chat_template(chat)) for chat in self.prompts]
        too_long = [i for i, row in enumerate(ids) if len(row) > self.config.max_prompt_length]
        if too_long:
            raise ValueError(
                f"{len(too_long)} prompts are longer than max_prompt_length={self.config.max_prompt_length} tokens "
                f"(first: prompt {too_long[0]}, {len(ids[too_long[0]])} tokens); raise max_prompt_length or drop them"
            )
        return ids

    def _check_references(self, references) -> np.ndarray:
        """r_ref as ``[num_prompts, P]`` float32 in property order (NaN where none was given)."""
        n = len(self.prompts)
        if references is None:
            if self.config.utility.needs_references:
                raise ValueError(f"the transform {self.config.utility.transform!r} needs references {{property: [num_prompts]}}")
            return np.full((n, len(self.properties)), np.nan, np.float32)
        names = sorted(references)
        if names != sorted(self.properties):
            raise ValueError(f"references name {names}; the reward functions score {sorted(self.properties)}")
        out = np.stack([np.asarray(references[p], np.float32).reshape(-1) for p in self.properties], axis=1)
        if out.shape[0] != n:
            raise ValueError(f"references have {out.shape[0]} entries per property; there are {n} prompts")
        bad = np.argwhere(~np.isfinite(out))
        if len(bad):
            prompt, prop = bad[0]
            raise ValueError(f"reference reward of property {self.properties[prop]!r} for prompt {prompt} is {out[prompt, prop]}")
        return out

    def _on_mesh(self, x, batch: bool = True) -> jax.Array:
        """Host data (the same on every process) on the mesh: rows over the logical "batch" axis,
        or replicated; a plain device array without a mesh."""
        if self.mesh is None:
            return jnp.asarray(x)
        x = np.asarray(x)
        if not batch:
            return from_host(x, NamedSharding(self.mesh, PartitionSpec()))
        return from_host(x, logical_sharding(self.mesh, ("batch",) + (None,) * (x.ndim - 1), self.rules, shape=x.shape))

    def _mesh_context(self):
        return contextlib.nullcontext() if self.mesh is None else jax.set_mesh(self.mesh)

    # ----------------------------------------------------------------------------- programs

    def _trace_reference(self, *args):
        """``reference_pass`` at this learner's prompt length (counts its traces)."""
        self._compilations["reference"] += 1
        return reference_pass(*args, prompt_length=self.sampler_prompt_length)

    def _trace_advantages(self, rewards, references, ended, old_logprobs, ref_logprobs, values, response_mask, kl_coef):
        """Utilities, advantages, value targets, rollout metrics and non-finite flags."""
        self._compilations["advantages"] += 1
        c = self.config
        mask = response_mask.astype(jnp.float32)
        kl_tokens = kl.k1(old_logprobs, ref_logprobs) * mask
        kl_sequence = kl_tokens.sum(axis=1)
        utility_of = lambda r: c.utility(r, jnp.nan_to_num(references), self.properties, c.num_samples)  # noqa: E731
        utility, slope_fn = jax.vjp(utility_of, rewards)
        slopes = slope_fn(jnp.ones_like(utility))[0]  # dU/dr_p per response: the weight of a reward gain
        if c.no_eos_penalty is not None:
            utility = jnp.where(ended, utility, utility - c.no_eos_penalty)
        in_reward = c.kl_in == "reward"
        if c.algorithm == "ppo":
            last = jax.nn.one_hot(mask.sum(axis=1).astype(jnp.int32) - 1, mask.shape[1])
            token_rewards = utility[:, None] * last - (kl_coef * kl_tokens if in_reward else 0.0)
            advantages, returns = adv.gae(token_rewards, values, mask, c.gamma, c.gae_lambda)
            if c.whiten_advantages:
                advantages = adv.masked_whiten(advantages, mask)
        else:
            score = utility - kl_coef * kl_sequence if in_reward else utility
            estimator = adv.rloo if c.algorithm == "rloo" else adv.group_normalized
            advantages = estimator(score.reshape(-1, c.num_samples)).reshape(-1)[:, None] * mask
            returns = jnp.zeros_like(advantages)
        lengths = mask.sum(axis=1)
        response_advantage = jnp.abs(advantages).sum(axis=1) / jnp.maximum(lengths, 1.0)
        metrics = {
            "utility": utility.mean(),
            "kl/sequence": kl_sequence.mean(),
            "kl/token": kl_sequence.sum() / jnp.maximum(lengths.sum(), 1.0),
            "kl/coef": kl_coef,
            "response_length": lengths.mean(),
            "no_eos_fraction": 1.0 - ended.astype(jnp.float32).mean(),
            "advantage_abs": response_advantage.mean(),
        }
        for p, name in enumerate(self.properties):
            metrics[f"reward/{name}"] = rewards[:, p].mean()
            below = rewards[:, p] < references[:, p]
            above = rewards[:, p] > references[:, p]
            metrics[f"advantage_abs/below_ref/{name}"] = adv.masked_mean(response_advantage, below)
            metrics[f"advantage_abs/above_ref/{name}"] = adv.masked_mean(response_advantage, above)
            metrics[f"utility_slope/below_ref/{name}"] = adv.masked_mean(slopes[:, p], below)
            metrics[f"utility_slope/above_ref/{name}"] = adv.masked_mean(slopes[:, p], above)
            metrics[f"above_ref_fraction/{name}"] = above.astype(jnp.float32).mean()
        if c.algorithm == "ppo":
            residual = adv.masked_mean(jnp.square(returns - values), mask) - jnp.square(adv.masked_mean(returns - values, mask))
            variance = adv.masked_mean(jnp.square(returns), mask) - jnp.square(adv.masked_mean(returns, mask))
            metrics["explained_variance"] = 1.0 - residual / jnp.maximum(variance, 1e-8)
        flags = {f"reward '{name}'": ~jnp.isfinite(rewards[:, p]).all() for p, name in enumerate(self.properties)}
        flags["utility"] = ~jnp.isfinite(utility).all()
        return advantages, returns, metrics, flags

    @property
    def num_compilations(self) -> dict[str, int]:
        """Programs traced so far by each phase (sampling: ``self.sampler.num_compilations``)."""
        return {**self._compilations, "update": self._update.num_compilations}

    @property
    def sampler_prompt_length(self) -> int:
        return self.config.max_prompt_length

    # ----------------------------------------------------------------------------- the step

    def train_step(self) -> dict[str, float]:
        """One sample-score-update step; returns its host timings (metrics are in ``history``
        once logged)."""
        c = self.config
        times = {}
        start = time.perf_counter()
        indices = self.stream.indices(self.position, c.prompts_per_step)
        self.key, sample_key, shuffle_key = jax.random.split(self.key, 3)
        with self._mesh_context():
            samples = sample_groups(self.sampler, self.trainable.policy, self.tokenizer,
                                    [self.prompt_ids[i] for i in indices], c.num_samples, sample_key)
        self._check_flags()  # the previous step's flags are ready: the sampler read its parameters
        times["time/sample"] = time.perf_counter() - start

        mark = time.perf_counter()
        rows = np.repeat(indices, c.num_samples)
        scores = to_host(score_all(self.reward_fns, [self.prompts[i] for i in rows], samples.texts, c.num_samples))
        rewards = self._on_mesh(np.stack([scores[p] for p in self.properties], axis=1).astype(np.float32))
        rewards.block_until_ready()
        times["time/score"] = time.perf_counter() - mark

        mark = time.perf_counter()
        out = samples.output
        reference_def, reference_state = nnx.split(self.reference)
        trainable_def, trainable_state = nnx.split(self.trainable)
        with self._mesh_context():
            ref_logprobs, values = self._reference_pass(reference_def, trainable_def, reference_state, trainable_state,
                                                        out.tokens, out.prompt_mask, out.response_mask)
            ref_logprobs.block_until_ready()
        times["time/reference"] = time.perf_counter() - mark

        mark = time.perf_counter()
        old_logprobs = out.model_logprobs[:, out.prompt_length :]
        response_mask = out.response_mask[:, out.prompt_length :]
        with self._mesh_context():
            advantages, returns, metrics, flags = self._advantages(
                rewards, self._on_mesh(self.references[rows]), self._on_mesh(samples.ended), old_logprobs, ref_logprobs,
                values, response_mask, self.kl_coef,
            )
            batch = UpdateBatch(out.tokens, out.prompt_mask, out.response_mask, old_logprobs, ref_logprobs, advantages, returns, values)
            update_metrics = self._optimize(batch, shuffle_key)
        metrics.update(update_metrics)
        flags.update({"loss": ~jnp.isfinite(update_metrics["loss"]), "gradients": ~jnp.isfinite(update_metrics["grad_norm"])})
        if c.kl_target is not None:
            self.kl_coef = kl.adaptive_coefficient(self.kl_coef, metrics["kl/sequence"], c.kl_target, c.kl_horizon, c.batch_size)
        jax.block_until_ready(metrics)
        times["time/update"] = time.perf_counter() - mark
        times["time/step"] = time.perf_counter() - start
        times["tokens_per_second"] = float(samples.lengths.sum()) / times["time/step"]

        self.step += 1
        self.position += c.prompts_per_step
        self._unchecked.append((self.step, flags))
        self._unlogged.append((self.step, metrics, times))
        return times

    def _optimize(self, batch: UpdateBatch, key: jax.Array) -> dict[str, jax.Array]:
        """``epochs x minibatches`` optimizer steps on shuffled minibatches; mean metrics."""
        c = self.config
        size = c.batch_size // c.minibatches
        mask = batch.response_mask[:, self.sampler_prompt_length :]
        collected = []
        for epoch in range(c.epochs):
            order = jax.random.permutation(jax.random.fold_in(key, epoch), c.batch_size) if c.minibatches > 1 or c.epochs > 1 else None
            for m in range(c.minibatches):
                if order is None:
                    minibatch, minibatch_mask = batch, mask
                else:
                    rows = order[m * size : (m + 1) * size]
                    minibatch, minibatch_mask = jax.tree.map(lambda x: x[rows], batch), mask[rows]
                token_norm = jnp.maximum(minibatch_mask.sum(), 1).astype(jnp.float32) / c.microbatches
                collected.append(self._update(self.trainable, self.optimizer, minibatch, self.kl_coef, token_norm))
        return jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *collected)

    # ----------------------------------------------------------------------------- the run

    def run(self, num_steps: int | None = None, *, progress: bool = True) -> list[dict[str, float]]:
        """Trains until ``num_steps`` (default ``config.num_steps``) steps are done; returns the
        logged metrics of every step (also in ``history``)."""
        c = self.config
        total = c.num_steps if num_steps is None else num_steps
        self._open_outputs()
        bar = tqdm(total=total, initial=self.step, disable=not progress or not is_primary(), desc=f"{c.algorithm} learner")
        while self.step < total:
            self.train_step()
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == total:
                last = self.flush()
                bar.set_postfix(utility=f"{last['utility']:.3f}", kl=f"{last['kl/sequence']:.2f}")
            if self._checkpoints is not None and c.checkpoint_every and self.step % c.checkpoint_every == 0:
                self.save()
        bar.close()
        self.flush()
        if self._checkpoints is not None and self.step not in self._checkpoints.steps:
            self.save()
        return self.history

    def flush(self) -> dict[str, float]:
        """Fetches and logs the pending steps' metrics (and checks their flags); returns the last."""
        self._check_flags()
        fetched = to_host([metrics for _, metrics, _ in self._unlogged])
        for (step, _, times), metrics in zip(self._unlogged, fetched):
            record = {"step": step, **{k: float(v) for k, v in metrics.items()}, **times}
            self.history.append(record)
            if self._writer is not None:
                self._writer.write(step, {k: v for k, v in record.items() if k != "step"})
        self._unlogged = []
        return self.history[-1] if self.history else {}

    def _check_flags(self) -> None:
        """Raises ``FloatingPointError`` for the first step whose rewards, utility, loss or gradients were not finite."""
        if not self._unchecked:
            return
        fetched = to_host([flags for _, flags in self._unchecked])
        steps = [step for step, _ in self._unchecked]
        self._unchecked = []
        for step, flags in zip(steps, fetched):
            # Causes before effects: rewards, then the utility, the loss and the gradients.
            order = ["reward", "utility", "loss", "gradients"]
            bad = sorted((source for source, flag in flags.items() if bool(flag)), key=lambda s: order.index(s.split()[0]))
            if bad:
                raise FloatingPointError(
                    f"step {step}: non-finite {', '.join(bad)}; that step's update was skipped, the parameters are finite"
                )

    # ----------------------------------------------------------------------------- checkpoints

    def _open_outputs(self) -> None:
        if self.workdir is None:
            return
        if self._writer is None:
            self._writer = MetricsWriter(self.workdir)
        if self._checkpoints is None:
            self._checkpoints = Checkpoints(self.workdir / "checkpoints")

    def _state(self) -> dict:
        return {"model": nnx.state((self.trainable, self.optimizer)), "kl_coef": self.kl_coef, "rng": jax.random.key_data(self.key)}

    def save(self) -> None:
        """Checkpoints the whole learner state at the current step (needs a ``workdir``)."""
        if self.workdir is None:
            raise ValueError("save() needs a workdir: pass workdir=... to the Learner")
        self._open_outputs()
        self._checkpoints.save(self.step, self._state(), {"step": self.step, "position": self.position}, wait=True)

    def restore(self, step: int | None = None) -> int:
        """Loads the state of ``step`` (default: the latest checkpoint in ``workdir``) onto the
        current placement; the next ``train_step`` continues the run exactly. Returns the step."""
        if self.workdir is None:
            raise ValueError("restore() needs a workdir: pass workdir=... to the Learner")
        self._open_outputs()
        state = self._state()
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
        restored, meta = self._checkpoints.restore(abstract, step)
        nnx.update((self.trainable, self.optimizer), restored["model"])
        self.kl_coef = restored["kl_coef"]
        self.key = jax.random.wrap_key_data(restored["rng"])
        self.step, self.position = meta["step"], meta["position"]
        return self.step

    def close(self) -> None:
        """Flushes metrics and closes the metric writer and the checkpoint manager (reopened on demand)."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._checkpoints is not None:
            self._checkpoints.close()
            self._checkpoints = None
