"""Llama-family decoder in Flax NNX, with a KV cache for sampling.

Interface (the sampler depends on exactly this):

* ``model.init_cache(batch_size, max_length) -> KVCache`` with ``k, v`` of shape
  ``[num_layers, batch, max_length, num_kv_heads, head_dim]`` in the compute dtype, zeros.
* ``model(tokens, positions, kv_mask, cache=None, cache_index=None, layer_weights=None) -> (logits, new_cache)``:
  ``tokens, positions`` int32 ``[B, T]``; ``kv_mask`` bool ``[B, S]`` marks valid (non-padding)
  key slots, ``S = T`` without a cache and ``S = max_length`` with one. With a cache the T new
  tokens are written at slots ``cache_index .. cache_index + T - 1`` (int32 scalar, may be
  traced, the same for the whole batch: prompts are left-padded) and query t attends key slot s
  iff ``s <= cache_index + t and kv_mask[b, s]``. Without a cache: causal within the T tokens
  and ``kv_mask``; ``new_cache`` is then ``None``. Logits are float32 ``[B, T, vocab]``. A fully
  masked query row gives finite values (never NaN). Writes past ``max_length`` are clamped by
  ``dynamic_update_slice``; the caller keeps ``cache_index + T <= max_length``.
* ``model.hidden_states(...)`` takes the same arguments and returns the final-normed hidden
  states ``[B, T, D]`` (compute dtype) and the cache, for reward and value heads;
  ``model.logits(hidden)`` maps them to float32 logits.

Parameters carry logical axis names in the NNX sharding metadata (``out_sharding``, not applied
eagerly); ``alignment.models.partitioning`` maps them to a mesh with the rules table of
``alignment.parallel``. The L blocks are stored stacked along a leading "layers" axis and run
with ``jax.lax.scan``, so compile time does not grow with depth; ``layer_weights`` (from
``model.layers.unstacked_weights()``) optionally runs them as an unrolled loop over per-layer
copies instead, for the sampler's decode steps (see ``alignment.sampling.sampler``).
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from alignment.models.config import DecoderConfig
from alignment.models.layers import (
    apply_rope,
    attention,
    attention_mask,
    dense,
    rms_norm,
    rope_frequencies,
    rope_tables,
)
from alignment.models.lora import LoRAConfig, adapter_output, lora_names, merge_weight
from alignment.parallel import DEFAULT_RULES, with_logical_constraint

CACHE_AXES = ("layers", "batch", "length", "kv_heads", "head_dim")  # logical axes of KVCache.k and .v
HIDDEN_AXES = ("batch", "length", "embed")

_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    # The projections' outputs (``checkpoint_name`` in ``_block``): the matmul outputs of the base
    # weights, with LoRA's adapter output added in (saving every dot output would keep those apart).
    "dots": jax.checkpoint_policies.save_only_these_names("projection"),
}


class KVCache(flax.struct.PyTreeNode):
    """Keys and values of every layer, ``[num_layers, batch, max_length, num_kv_heads, head_dim]``."""

    k: jax.Array
    v: jax.Array

    @property
    def max_length(self) -> int:
        return self.k.shape[2]


def _param(value: jax.Array, axes: tuple[str | None, ...]) -> nnx.Param:
    """A parameter annotated with logical axis names (resolved later by the rules table)."""
    return nnx.Param(value, out_sharding=axes, eager_sharding=False)


class LayerStack(nnx.Module):
    """The weights of all L blocks, stacked along a leading "layers" axis.

    Block l computes, with ``n(.)`` = RMSNorm:
      ``x += Attn(n(x) W_q, n(x) W_k, n(x) W_v) W_o``;  ``x += SwiGLU(n(x))``.
    """

    def __init__(self, config: DecoderConfig, rngs: nnx.Rngs):
        c = config
        n_layers, d, h, kv, hd, f = c.num_layers, c.embed_dim, c.num_heads, c.num_kv_heads, c.head_dim, c.mlp_dim
        normal = nnx.initializers.normal(c.init_std)

        def matrix(shape, axes):
            return _param(normal(rngs.params(), (n_layers, *shape), c.weight_dtype), ("layers", *axes))

        def scale():
            return _param(jnp.ones((n_layers, d), c.weight_dtype), ("layers", "norm"))

        self.attn_norm = scale()
        self.q = matrix((d, h, hd), ("embed", "heads", "head_dim"))
        self.k = matrix((d, kv, hd), ("embed", "kv_heads", "head_dim"))
        self.v = matrix((d, kv, hd), ("embed", "kv_heads", "head_dim"))
        self.o = matrix((h, hd, d), ("heads", "head_dim", "embed"))
        self.mlp_norm = scale()
        self.gate = matrix((d, f), ("embed", "mlp"))
        self.up = matrix((d, f), ("embed", "mlp"))
        self.down = matrix((f, d), ("mlp", "embed"))

    def weights(self) -> dict[str, jax.Array]:
        """The stacked arrays by name (the ``xs`` of the layer scan), adapters included."""
        return {name: var[...] for name, var in vars(self).items() if isinstance(var, nnx.Param)}

    def unstacked_weights(self, lora: LoRAConfig | None = None) -> list[dict[str, jax.Array]]:
        """One dict of weights per layer: copies of the stacked arrays' slices, with ``lora``'s
        adapters merged into the weights they adapt (``W + (alpha / r) A B``, once per call).

        For loops that run the blocks many times (decoding): XLA:CPU copies a slice of a stacked
        array before every matmul that reads it, so slicing once outside the loop moves each
        weight once per call instead of once per step, at the price of a second copy of the
        layer weights while the loop runs.
        """
        stacked = self.weights()
        adapters = {name for target in (lora.targets if lora else ()) for name in lora_names(target)}
        if lora is not None:
            for target in lora.targets:
                a, b = (stacked[name] for name in lora_names(target))
                stacked[target] = merge_weight(stacked[target], a, b, lora.scale)
        num_layers = stacked["attn_norm"].shape[0]
        return [{name: a[layer] for name, a in stacked.items() if name not in adapters} for layer in range(num_layers)]


def _block(x, w, kv, layer, *, config: DecoderConfig, cos, sin, mask, cache_index, rules, lora: LoRAConfig | None):
    """One pre-norm block on ``x [B, T, D]`` with this layer's weights ``w`` (and ``lora``'s
    adapters, when ``w`` holds them: ``x W + (alpha / r) (x A) B``).

    ``kv`` is ``None`` (keys are the T new tokens) or a stack of caches ``(k, v)``, each
    ``[L', B, S, KV, hd]``, of which entry ``layer`` (a static int) is this layer's: the new keys
    and values are written into it at slot ``cache_index``, in place. Returns the new ``x`` and
    the updated ``(k, v)`` stacks (``None`` without a cache).
    """
    c = config
    batch, length, d = x.shape
    w = {name: a.astype(c.compute_dtype) for name, a in w.items()}
    adapted = () if lora is None else lora.targets

    def project(name, h):
        y = dense(h, w[name].reshape(h.shape[-1], -1))
        if name in adapted and lora_names(name)[0] in w:
            y = y + adapter_output(h, *(w[n] for n in lora_names(name)), lora.scale)
        return checkpoint_name(y, "projection")

    h = rms_norm(x, w["attn_norm"], c.norm_eps).reshape(batch * length, d)
    q = project("q", h).reshape(batch, length, c.num_heads, c.head_dim)
    k = project("k", h).reshape(batch, length, c.num_kv_heads, c.head_dim)
    v = project("v", h).reshape(batch, length, c.num_kv_heads, c.head_dim)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    if kv is not None:
        start = (layer, 0, cache_index, 0, 0)
        kv = tuple(jax.lax.dynamic_update_slice(stack, new[None].astype(stack.dtype), start) for stack, new in zip(kv, (k, v)))
        k, v = kv[0][layer], kv[1][layer]
    out = attention(q, k, v, mask).reshape(batch * length, -1)
    x = x + project("o", out).reshape(batch, length, d)
    h = rms_norm(x, w["mlp_norm"], c.norm_eps).reshape(batch * length, d)
    x = x + project("down", jax.nn.silu(project("gate", h)) * project("up", h)).reshape(batch, length, d)  # SwiGLU
    return with_logical_constraint(x, HIDDEN_AXES, rules), kv


class Decoder(nnx.Module):
    """Token embedding, L scanned blocks, final RMSNorm, tied or untied output head.

    ``lora``: the ``LoRAConfig`` of the adapters that ``alignment.models.lora.add_adapters``
    added to ``layers`` (``None``: none, or switched off by ``lora.adapters_off``).
    """

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs, rules=DEFAULT_RULES):
        c = config
        self.config = config
        self.rules = tuple(rules)
        self.lora: LoRAConfig | None = None
        normal = nnx.initializers.normal(c.init_std)
        self.embed = _param(normal(rngs.params(), (c.vocab_size, c.embed_dim), c.weight_dtype), ("vocab", "embed"))
        self.layers = LayerStack(c, rngs)
        self.final_norm = _param(jnp.ones((c.embed_dim,), c.weight_dtype), ("norm",))
        if not c.tie_embeddings:
            self.lm_head = _param(normal(rngs.params(), (c.embed_dim, c.vocab_size), c.weight_dtype), ("embed", "vocab"))

    def init_cache(self, batch_size: int, max_length: int) -> KVCache:
        c = self.config
        shape = (c.num_layers, batch_size, max_length, c.num_kv_heads, c.head_dim)
        return KVCache(k=jnp.zeros(shape, c.compute_dtype), v=jnp.zeros(shape, c.compute_dtype))

    def __call__(self, tokens, positions, kv_mask, cache: KVCache | None = None, cache_index=None, layer_weights=None):
        hidden, cache = self.hidden_states(tokens, positions, kv_mask, cache, cache_index, layer_weights)
        return self.logits(hidden), cache

    def hidden_states(self, tokens, positions, kv_mask, cache: KVCache | None = None, cache_index=None, layer_weights=None):
        """Final-normed hidden states ``[B, T, D]`` and the updated cache (see module docstring).

        ``layer_weights``: ``None`` scans the stacked layer weights (compile time independent
        of depth); a list from ``self.layers.unstacked_weights(self.lora)`` runs the blocks as an
        unrolled loop over it instead (the sampler's decode steps on CPU, see there).
        """
        c = self.config
        self._check_inputs(tokens, positions, kv_mask, cache, cache_index)
        dtype = c.compute_dtype
        # The table is gathered whole along "embed" first (FSDP), so the lookup partitions by vocab.
        table = with_logical_constraint(self.embed[...], ("vocab", None), self.rules)
        x = with_logical_constraint(jnp.take(table, tokens, axis=0).astype(dtype), HIDDEN_AXES, self.rules)
        cos, sin = rope_tables(positions, rope_frequencies(c.head_dim, c.rope_theta, c.rope_scaling), dtype)
        offset = 0 if cache is None else jnp.asarray(cache_index, jnp.int32)
        block = functools.partial(
            _block, config=c, cos=cos, sin=sin, mask=attention_mask(kv_mask, tokens.shape[1], offset),
            cache_index=offset, rules=self.rules, lora=self.lora,
        )
        if c.remat != "none":
            block = jax.checkpoint(block, policy=_REMAT_POLICIES[c.remat], prevent_cse=False, static_argnums=(3,))
        if layer_weights is not None:
            if len(layer_weights) != c.num_layers:
                raise ValueError(f"layer_weights has {len(layer_weights)} layers; the model has {c.num_layers}")
            kv = None if cache is None else (cache.k, cache.v)
            for layer, w in enumerate(layer_weights):
                x, kv = block(x, w, kv, layer)
            cache = None if cache is None else KVCache(*kv)
        elif cache is None:
            x, _ = jax.lax.scan(lambda x, w: (block(x, w, None, 0)[0], None), x, self.layers.weights())
        else:

            def scan_block(x, xs):
                w, k, v = xs
                x, (k, v) = block(x, w, (k[None], v[None]), 0)
                return x, (k[0], v[0])

            x, (k, v) = jax.lax.scan(scan_block, x, (self.layers.weights(), cache.k, cache.v))
            cache = KVCache(k=k, v=v)
        return rms_norm(x, self.final_norm[...], c.norm_eps), cache

    def logits(self, hidden: jax.Array) -> jax.Array:
        """float32 logits ``[..., V]`` = ``hidden @ E^T`` (tied) or ``hidden @ W_head``."""
        c = self.config
        flat = hidden.reshape(-1, c.embed_dim)
        if c.tie_embeddings:
            head = self.embed[...].astype(hidden.dtype)
            out = jax.lax.dot_general(flat, head, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
        else:
            out = jnp.dot(flat, self.lm_head[...].astype(hidden.dtype), preferred_element_type=jnp.float32)
        return with_logical_constraint(out.reshape(*hidden.shape[:-1], c.vocab_size), ("batch", "length", "vocab"), self.rules)

    def _check_inputs(self, tokens, positions, kv_mask, cache, cache_index):
        batch, length = tokens.shape
        slots = length if cache is None else cache.max_length
        problems = []
        if positions.shape != tokens.shape:
            problems.append(f"positions {positions.shape} != tokens {tokens.shape}")
        if kv_mask.shape != (batch, slots):
            what = "T (no cache)" if cache is None else "the cache's max_length"
            problems.append(f"kv_mask {kv_mask.shape} must be [B, S] = {(batch, slots)} with S = {what}")
        if cache is not None:
            if cache_index is None:
                problems.append("cache_index is required with a cache")
            if cache.k.shape[1] != batch:
                problems.append(f"cache batch {cache.k.shape[1]} != tokens batch {batch}")
            if length > cache.max_length:
                problems.append(f"{length} new tokens do not fit a cache of max_length {cache.max_length}")
        if problems:
            raise ValueError("Decoder inputs: " + "; ".join(problems))
