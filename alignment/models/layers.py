"""Pure array functions of the Llama block: RMSNorm, RoPE, masks, grouped-query attention, projections.

Shapes: B batch, T new tokens (queries), S key slots, H query heads, KV key/value heads,
G = H / KV queries per key head, hd head width, D model width, F MLP width.

Projections flatten the tokens to ``[B*T, D]`` and use 2-D matmuls: on CPU their backward pass
is much faster than that of 3-D einsums.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from alignment.models.config import RopeScaling


def positions_from_mask(mask: jax.Array) -> jax.Array:
    """RoPE positions of padded rows: each real token's index among its row's real tokens
    (``cumsum(mask) - 1``, clipped at 0 for leading padding), int32."""
    return jnp.maximum(jnp.cumsum(mask, axis=-1) - 1, 0).astype(jnp.int32)


def rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
    """``x / sqrt(mean(x**2, -1) + eps) * scale``, the statistics in float32."""
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return (normed * scale.astype(jnp.float32)).astype(x.dtype)


def rope_frequencies(head_dim: int, theta: float, scaling: RopeScaling | None = None) -> np.ndarray:
    """float32 ``[head_dim / 2]`` RoPE frequencies ``theta ** (-2i / head_dim)``, then ``scaling``
    (see ``RopeScaling``). Computed in NumPy: they are constants of the model."""
    freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if scaling is not None and scaling.kind == "linear":
        freq = freq / scaling.factor
    elif scaling is not None:  # "llama3"
        lo, hi = scaling.low_freq_factor, scaling.high_freq_factor
        context_over_wavelength = scaling.original_max_length * freq / (2 * np.pi)
        keep = np.clip((context_over_wavelength - lo) / (hi - lo), 0.0, 1.0)
        freq = (1 - keep) * freq / scaling.factor + keep * freq
    return freq.astype(np.float32)


def rope_tables(positions: jax.Array, frequencies: np.ndarray, dtype) -> tuple[jax.Array, jax.Array]:
    """``cos, sin`` of angles ``positions * frequencies``, each ``[B, T, head_dim/2]``."""
    angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(frequencies)
    return jnp.cos(angles).astype(dtype), jnp.sin(angles).astype(dtype)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotates ``x [B, T, N, hd]`` in the "half-split" layout of Hugging Face Llama.

    With ``x = [x1, x2]`` (the two halves of the head): ``[x1 cos - x2 sin, x2 cos + x1 sin]``.
    """
    x1, x2 = jnp.split(x, 2, axis=-1)
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def attention_mask(kv_mask: jax.Array, num_queries: int, offset: jax.Array | int = 0) -> jax.Array:
    """``[B, T, S]`` bool: query t may see key slot s iff ``s <= offset + t`` and ``kv_mask[b, s]``."""
    query_slot = offset + jnp.arange(num_queries, dtype=jnp.int32)[:, None]
    key_slot = jnp.arange(kv_mask.shape[1], dtype=jnp.int32)[None, :]
    return (key_slot <= query_slot)[None] & kv_mask[:, None, :]


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Grouped-query softmax attention; returns ``[B, T, H * hd]``.

    ``softmax(q k^T / sqrt(hd))`` over allowed keys, query head h reading key head ``h // G``.
    Disallowed scores are set to the most negative finite float, so a fully masked row (a
    padding query) becomes a uniform average instead of NaN.

    Args:
      q: ``[B, T, H, hd]``; k, v: ``[B, S, KV, hd]``; mask: ``[B, T, S]`` bool.
    """
    batch, length, heads, head_dim = q.shape
    kv_heads = k.shape[2]
    q = q.reshape(batch, length, kv_heads, heads // kv_heads, head_dim) * jnp.asarray(head_dim**-0.5, q.dtype)
    scores = jnp.einsum("btkgd,bskd->bkgts", q, k, preferred_element_type=jnp.float32)
    scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v, preferred_element_type=jnp.float32).astype(v.dtype)
    return out.reshape(batch, length, heads * head_dim)


def dense(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x @ w`` accumulated in float32, returned in ``x``'s dtype (bfloat16 inputs then run
    XLA:CPU's bfloat16 matmul kernels instead of being upcast to float32)."""
    return jnp.dot(x, w, preferred_element_type=jnp.float32).astype(x.dtype)

