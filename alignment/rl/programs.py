"""The learner's pure programs, apart from its loop: each is a function of arrays (and graph
definitions) that the learner, the experiment's judge and ``lowering.py`` jit alike.

    response_hidden      hidden states of the positions that emit the response tokens
    base_policy_pass     log pi_0 of the response tokens (and the critic's values V(s_t))
    rollout_advantages   utilities, the algorithm's advantages, the claim-1 diagnostics and
                         the non-finite flags of one rollout
    policy_loss          the minibatch loss of the algorithm (below)

The minibatch loss, with w the algorithm's per-token weights (``algorithms.loss_weights``) and
rho_t its importance ratio (per token, or GSPO's per sequence)::

    loss = sum_t w_t [ -min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps_high) A_t) - c_H H_t
                       (+ beta k3_t with the KL in the loss) (+ c_V value_loss_t with a critic) ]

Claim 1 of Wang et al., "Transforming and Combining Rewards for Aligning Large Language Models"
(arXiv 2402.00742), the gradient shape, is logged per property p for responses below and above
r_ref,p: ``utility_slope/...`` = mean dU/dr_p (exact, by autodiff: sigmoid(r_ref - r) under
LSC, 1 under the raw sum) and ``advantage_abs/...`` = mean |A|.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from alignment.models import lora
from alignment.models.decoder import Decoder
from alignment.models.heads import ValueModel
from alignment.models.layers import positions_from_mask
from alignment.parallel import with_logical_constraint
from alignment.rl import advantages as adv
from alignment.rl import algorithms, kl
from alignment.rl.config import LearnerConfig
from alignment.rl.losses import clipped_surrogate, token_logprobs_and_entropy, value_loss


class Trainable(nnx.Module):
    """What the optimizer updates: the policy and, for an algorithm with a critic, the value
    model (own backbone, or a head on the policy's when its ``backbone`` is the policy)."""

    def __init__(self, policy: Decoder, value: ValueModel | None):
        self.policy = policy
        self.value = value

    @property
    def shared_value(self) -> bool:
        return self.value is not None and self.value.backbone is self.policy

    def add_adapters(self, config: lora.LoRAConfig) -> None:
        """LoRA adapters ``config`` on the policy and on the critic's own backbone (in place);
        a decoder that has them already must have these."""
        decoders = [self.policy] + ([self.value.backbone] if self.value is not None and not self.shared_value else [])
        for decoder in decoders:
            if decoder.lora is None:
                lora.add_adapters(decoder, config)
            elif decoder.lora != config:
                raise ValueError(f"the decoder already has adapters {decoder.lora}, not the config's {config}")


class UpdateBatch(NamedTuple):
    """One rollout, ``[B, L]`` sequences and ``[B, N]`` per-response-token arrays.
    ``loss_weights``: the tokens that count (1/0, e.g. 0 for a group DAPO drops) in the rollout;
    a minibatch's normalised weights (``algorithms.loss_weights``) when it reaches the update."""

    tokens: jax.Array
    prompt_mask: jax.Array
    response_mask: jax.Array
    old_logprobs: jax.Array
    base_logprobs: jax.Array
    advantages: jax.Array
    returns: jax.Array
    old_values: jax.Array
    loss_weights: jax.Array


def response_hidden(model: Decoder, tokens, prompt_mask, response_mask, prompt_length: int):
    """Hidden states ``[B, N, D]`` of the states that emit response tokens 0 .. N-1 (columns P-1 .. L-2)."""
    valid = prompt_mask | response_mask
    hidden, _ = model.hidden_states(tokens[:, :-1], positions_from_mask(valid)[:, :-1], valid[:, :-1])
    return hidden[:, prompt_length - 1 :]


def response_logprobs(model: Decoder, tokens, prompt_mask, response_mask, prompt_length: int) -> jax.Array:
    """log p(y_t) of each response token under ``model``, ``[B, N]``."""
    logits = model.logits(response_hidden(model, tokens, prompt_mask, response_mask, prompt_length))
    return token_logprobs_and_entropy(logits, tokens[:, prompt_length:])[0]


def response_values(trainable: Trainable, tokens, prompt_mask, response_mask, prompt_length: int, policy_hidden=None):
    """V(s_t) ``[B, N]`` from the value head on the policy's (or its own backbone's) hidden states."""
    value = trainable.value
    if trainable.shared_value:
        hidden = response_hidden(trainable.policy, tokens, prompt_mask, response_mask, prompt_length) if policy_hidden is None else policy_hidden
    else:
        hidden = response_hidden(value.backbone, tokens, prompt_mask, response_mask, prompt_length)
    return value.head(hidden)


def base_policy_pass(base_def, trainable_def, base_state, trainable_state, tokens, prompt_mask, response_mask, *, prompt_length: int):
    """log pi_0 of the response tokens and the critic's values ``[B, N]`` (zeros without a
    critic); the graph definitions are the static arguments of its ``jax.jit``. ``base_def``
    ``None``: pi_0 is the policy with its LoRA adapters off."""
    trainable = nnx.merge(trainable_def, trainable_state)
    base = lora.adapters_off(trainable.policy) if base_def is None else nnx.merge(base_def, base_state)
    base_logprobs = response_logprobs(base, tokens, prompt_mask, response_mask, prompt_length)
    values = jnp.zeros_like(base_logprobs)
    if trainable.value is not None:
        values = response_values(trainable, tokens, prompt_mask, response_mask, prompt_length)
    return base_logprobs, values


def rollout_advantages(rewards, references, ended, old_logprobs, base_logprobs, values, response_mask, kl_coef, *,
                       config: LearnerConfig, properties: Sequence[str]):
    """One rollout's advantages ``[B, N]``, value targets ``[B, N]``, the tokens that count
    ``[B, N]``, metrics and non-finite flags.

    ``rewards`` ``[B, P]`` and ``references`` ``[B, P]`` (r_ref of each response's prompt, NaN
    where none) in ``properties`` order; ``ended`` ``[B]`` whether a response emitted EOS.
    """
    c, algorithm = config, config.algorithm_spec
    mask = response_mask.astype(jnp.float32)
    kl_tokens = kl.k1(old_logprobs, base_logprobs) * mask
    kl_sequence = kl_tokens.sum(axis=1)
    utility_of = lambda r: c.utility(r, jnp.nan_to_num(references), tuple(properties), c.num_samples)  # noqa: E731
    utility, slope_fn = jax.vjp(utility_of, rewards)
    slopes = slope_fn(jnp.ones_like(utility))[0]  # dU/dr_p per response: the weight of a reward gain
    counted = algorithms.varied_groups(utility, c.num_samples) if algorithm.filter_groups else jnp.ones_like(utility)
    if c.shaping.no_eos_penalty is not None:
        utility = jnp.where(ended, utility, utility - c.shaping.no_eos_penalty)
    lengths = mask.sum(axis=1)
    shaping = algorithms.overlong_penalty(lengths, c.rollout.max_new_tokens, c.overlong_window, c.shaping.overlong_penalty)
    utility = utility + shaping
    advantages, returns = algorithm.estimate(algorithms.AdvantageInputs(utility, kl_tokens, values, mask, kl_coef), c)
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
    if algorithm.filter_groups:
        metrics["filtered_groups"] = 1.0 - counted.mean()
    if c.overlong_window:
        metrics["overlong_penalty"] = shaping.mean()
    for p, name in enumerate(properties):
        metrics[f"reward/{name}"] = rewards[:, p].mean()
        below = rewards[:, p] < references[:, p]
        above = rewards[:, p] > references[:, p]
        metrics[f"advantage_abs/below_ref/{name}"] = adv.masked_mean(response_advantage, below)
        metrics[f"advantage_abs/above_ref/{name}"] = adv.masked_mean(response_advantage, above)
        metrics[f"utility_slope/below_ref/{name}"] = adv.masked_mean(slopes[:, p], below)
        metrics[f"utility_slope/above_ref/{name}"] = adv.masked_mean(slopes[:, p], above)
        metrics[f"above_ref_fraction/{name}"] = above.astype(jnp.float32).mean()
    if algorithm.critic:
        residual = adv.masked_mean(jnp.square(returns - values), mask) - jnp.square(adv.masked_mean(returns - values, mask))
        variance = adv.masked_mean(jnp.square(returns), mask) - jnp.square(adv.masked_mean(returns, mask))
        metrics["explained_variance"] = 1.0 - residual / jnp.maximum(variance, 1e-8)
    flags = {f"reward '{name}'": ~jnp.isfinite(rewards[:, p]).all() for p, name in enumerate(properties)}
    flags["utility"] = ~jnp.isfinite(utility).all()
    return advantages, returns, mask * counted[:, None], metrics, flags


def policy_loss(trainable: Trainable, batch: UpdateBatch, kl_coef, *, config: LearnerConfig, prompt_length: int, rules):
    """The minibatch loss (module docstring) with ``batch.loss_weights`` normalised over the
    minibatch; ``(loss, metrics)`` as ``make_train_step`` expects (its microbatches sum)."""
    c, p, algorithm = config, prompt_length, config.algorithm_spec
    mask = batch.response_mask[:, p:].astype(jnp.float32)
    weights = batch.loss_weights
    hidden = response_hidden(trainable.policy, batch.tokens, batch.prompt_mask, batch.response_mask, p)
    hidden = with_logical_constraint(hidden, ("batch", "length", "embed"), rules)
    logprobs, entropy = token_logprobs_and_entropy(trainable.policy.logits(hidden), batch.tokens[:, p:])
    if c.loss.entropy_coef == 0.0:
        entropy = jax.lax.stop_gradient(entropy)
    low, high = c.clip_range
    surrogate, clipped = clipped_surrogate(algorithms.log_ratio(algorithm, logprobs, batch.old_logprobs, mask), batch.advantages, low, high)
    loss = jnp.sum(weights * (surrogate - c.loss.entropy_coef * entropy))
    kl_loss = kl.k3(logprobs, batch.base_logprobs)
    if c.kl.placement == "loss":
        loss += kl_coef * jnp.sum(weights * kl_loss)
    metrics = {
        "policy_loss": adv.masked_mean(surrogate, mask),
        "clip_fraction": adv.masked_mean(clipped.astype(jnp.float32), mask),
        "entropy": adv.masked_mean(entropy, mask),
        "kl/k3_token": adv.masked_mean(kl_loss, mask),
    }
    if trainable.value is not None:
        values = response_values(trainable, batch.tokens, batch.prompt_mask, batch.response_mask, p, hidden)
        losses = value_loss(values, batch.old_values, batch.returns, c.critic_options.value_clip)
        loss += c.critic_options.value_coef * jnp.sum(weights * losses)
        metrics["value_loss"] = adv.masked_mean(losses, mask)
    return loss, metrics

