"""Heads on a decoder's final hidden states: scalar rewards, per-token values, GPM embeddings.

* ``RewardModel``: one Bradley-Terry reward per property on a shared backbone, read at the last
  valid token, ``r = h_last W + b`` -> ``[B, num_properties]``. Separate backbones per property
  compose with ``ensemble_rewards([model_a, model_b], ...)``.
* ``ValueModel``: a value per token, ``V_t = h_t w + b`` -> ``[B, T]``.
* ``GPMModel`` (the general preference model of Zhang et al., "General Preference Modeling
  with Preference Representations for Aligning Language Models", arXiv 2410.02197): a
  response embedding ``v in R^(2k)`` (optionally L2-normalised) read at the last valid token and prompt weights
  ``lambda(x) = softmax(h_prompt W_lambda + b)`` read at the last prompt token, scored with
  ``gpm_score``: ``s(y_i > y_j | x) = <R(x) v_i, v_j>``, ``R = blockdiag(lambda_l J)``,
  ``J = [[0, -1], [1, 0]]``. Bradley-Terry is the case k = 1, ``v = [r, c]``: s = c (r_i - r_j).

Heads compute in float32 and annotate their weights with logical axes like the decoder
(output dimensions replicated).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from alignment.models.decoder import Decoder


def last_valid_index(kv_mask: jax.Array) -> jax.Array:
    """Index of the last True of each row of ``kv_mask [B, T]`` (left and/or right padding)."""
    length = kv_mask.shape[-1]
    return length - 1 - jnp.argmax(kv_mask[..., ::-1], axis=-1)


def gather_tokens(hidden: jax.Array, index: jax.Array) -> jax.Array:
    """``hidden[b, index[b]]`` for ``hidden [B, T, D]`` -> ``[B, D]``."""
    return jnp.take_along_axis(hidden, index[:, None, None], axis=1)[:, 0]


def gpm_score(v_i: jax.Array, v_j: jax.Array, weights: jax.Array) -> jax.Array:
    """``s(y_i > y_j) = sum_l lambda_l (v_i[2l] v_j[2l+1] - v_i[2l+1] v_j[2l])``, shape ``[...]``.

    Exactly skew-symmetric in floating point: ``s(a, b) == -s(b, a)`` and ``s(a, a) == 0``. The
    two products are materialised before the subtraction (an optimisation barrier), so that no
    backend fuses them into an FMA, whose single rounding would break the symmetry.

    Args:
      v_i, v_j: ``[..., 2k]`` preference embeddings; weights: ``[..., k]`` (lambda(x), >= 0).
    """
    ahead, behind = jax.lax.optimization_barrier((v_i[..., 0::2] * v_j[..., 1::2], v_i[..., 1::2] * v_j[..., 0::2]))
    return jnp.sum(weights * (ahead - behind), axis=-1)


def _dense(rngs: nnx.Rngs, fan_in: int, fan_out: int, std: float) -> tuple[nnx.Param, nnx.Param]:
    kernel = nnx.initializers.normal(std)(rngs.params(), (fan_in, fan_out), jnp.float32)
    return (
        nnx.Param(kernel, out_sharding=("embed", None), eager_sharding=False),
        nnx.Param(jnp.zeros((fan_out,), jnp.float32), out_sharding=(None,), eager_sharding=False),
    )


class RewardModel(nnx.Module):
    """Backbone + linear head: ``[B, num_properties]`` rewards at each row's last valid token."""

    def __init__(self, backbone: Decoder, num_properties: int = 1, *, rngs: nnx.Rngs):
        self.backbone = backbone
        self.kernel, self.bias = _dense(rngs, backbone.config.embed_dim, num_properties, backbone.config.init_std)

    def __call__(self, tokens, positions, kv_mask) -> jax.Array:
        hidden, _ = self.backbone.hidden_states(tokens, positions, kv_mask)
        last = gather_tokens(hidden, last_valid_index(kv_mask)).astype(jnp.float32)
        return last @ self.kernel[...] + self.bias[...]


def ensemble_rewards(models: Sequence[RewardModel], tokens, positions, kv_mask) -> jax.Array:
    """Rewards of separately trained models side by side: ``[B, sum of their properties]``."""
    return jnp.concatenate([model(tokens, positions, kv_mask) for model in models], axis=-1)


class ValueModel(nnx.Module):
    """Backbone + linear head: a value per token, ``[B, T]`` float32."""

    def __init__(self, backbone: Decoder, *, rngs: nnx.Rngs):
        self.backbone = backbone
        self.kernel, self.bias = _dense(rngs, backbone.config.embed_dim, 1, backbone.config.init_std)

    def __call__(self, tokens, positions, kv_mask) -> jax.Array:
        hidden, _ = self.backbone.hidden_states(tokens, positions, kv_mask)
        return self.head(hidden)

    def head(self, hidden: jax.Array) -> jax.Array:
        """Values ``[...]`` of hidden states ``[..., D]`` (e.g. another model's, for a shared backbone)."""
        return (hidden.astype(jnp.float32) @ self.kernel[...] + self.bias[...])[..., 0]


class GPMModel(nnx.Module):
    """Backbone + GPM heads: ``(v [B, 2k], lambda [B, k])`` from one forward pass.

    ``v`` is read at the last valid token (the response's end), ``lambda`` at ``prompt_last``
    (the prompt's last token, whose hidden state depends on the prompt only, by causality).
    """

    def __init__(self, backbone: Decoder, num_blocks: int, *, normalize: bool = True, rngs: nnx.Rngs):
        if num_blocks < 1:
            raise ValueError(f"num_blocks (k, the embedding has 2k dims) must be >= 1, got {num_blocks}")
        width, std = backbone.config.embed_dim, backbone.config.init_std
        self.backbone = backbone
        self.normalize = normalize
        self.embed_kernel, self.embed_bias = _dense(rngs, width, 2 * num_blocks, std)
        self.prompt_kernel, self.prompt_bias = _dense(rngs, width, num_blocks, std)

    def __call__(self, tokens, positions, kv_mask, prompt_last: jax.Array) -> tuple[jax.Array, jax.Array]:
        hidden, _ = self.backbone.hidden_states(tokens, positions, kv_mask)
        response = gather_tokens(hidden, last_valid_index(kv_mask)).astype(jnp.float32)
        prompt = gather_tokens(hidden, prompt_last).astype(jnp.float32)
        v = response @ self.embed_kernel[...] + self.embed_bias[...]
        if self.normalize:
            v = v * jax.lax.rsqrt(jnp.sum(v * v, axis=-1, keepdims=True) + 1e-12)
        weights = jax.nn.softmax(prompt @ self.prompt_kernel[...] + self.prompt_bias[...], axis=-1)
        return v, weights
