"""``DecoderConfig``: the shape of a Llama-family decoder, with named presets.

A preset is looked up by name with ``get_config("smollm2-135m", dtype="bfloat16")``; keyword
overrides replace fields. Unknown names raise ``KeyError`` listing the valid ones.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

REMAT_CHOICES = ("none", "full", "dots")
ROPE_SCALING_KINDS = ("linear", "llama3")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling for contexts beyond the pre-training length.

    Each RoPE frequency ``f = theta ** (-2i / head_dim)`` (wavelength ``lam = 2 pi / f``) becomes:

    * "linear" (position interpolation): ``f / factor``.
    * "llama3" (Llama 3.1 and later), with ``L = original_max_length``, ``lo = low_freq_factor``,
      ``hi = high_freq_factor``: ``f`` where ``lam < L / hi``; ``f / factor`` where
      ``lam > L / lo``; in between ``(1 - a) f / factor + a f`` with ``a = (L / lam - lo) / (hi - lo)``.
    """

    kind: str
    factor: float
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_length: int = 8192

    def __post_init__(self):
        problems = []
        if self.kind not in ROPE_SCALING_KINDS:
            problems.append(f"kind={self.kind!r} is not one of {ROPE_SCALING_KINDS}")
        if not self.factor > 0:
            problems.append(f"factor={self.factor} must be positive")
        if self.kind == "llama3" and not 0 < self.low_freq_factor < self.high_freq_factor:
            problems.append(f"need 0 < low_freq_factor ({self.low_freq_factor}) < high_freq_factor ({self.high_freq_factor})")
        if self.original_max_length < 1:
            problems.append(f"original_max_length={self.original_max_length} must be positive")
        if problems:
            raise ValueError("invalid RopeScaling: " + "; ".join(problems))


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Hyper-parameters of a pre-norm Llama decoder.

    Attributes:
      vocab_size: V, rows of the token embedding.
      embed_dim: D, width of the residual stream.
      num_layers: L, transformer blocks (stacked along the "layers" axis and scanned).
      num_heads: H query heads.
      num_kv_heads: KV key/value heads; ``num_heads % num_kv_heads == 0`` (grouped-query attention).
      head_dim: width of one head (even, for RoPE).
      mlp_dim: F, hidden units of the SwiGLU MLP, ``down(silu(gate(x)) * up(x))``.
      rope_theta: RoPE base; frequencies ``theta ** (-2i / head_dim)``.
      rope_scaling: ``None`` or a ``RopeScaling`` of those frequencies (long-context checkpoints).
      norm_eps: RMSNorm epsilon, ``x / sqrt(mean(x**2) + eps) * scale``.
      tie_embeddings: the output head reuses the token embedding (logits = h @ E^T).
      max_length: the longest context the weights were trained for (informational).
      dtype: compute dtype of activations and matmul inputs (matmuls accumulate in float32).
        On this project's AVX512-BF16 CPU "bfloat16" runs the forward pass ~1.5x faster than
        "float32" but not the backward pass (XLA:CPU upcasts matmuls with transposed operands).
      param_dtype: storage dtype of the parameters.
      remat: per-layer rematerialisation: "none", "full" (recompute the whole layer in the
        backward pass), or "dots" (save the outputs of the q, k, v, o, gate, up and
        down projections, LoRA adapters included, and recompute the rest).
      init_std: standard deviation of the normal initialiser of the matrices.
    """

    vocab_size: int
    embed_dim: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    rope_theta: float = 10_000.0
    rope_scaling: RopeScaling | None = None
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    max_length: int = 2048
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"
    init_std: float = 0.02

    def __post_init__(self):
        problems = []
        for name in ("vocab_size", "embed_dim", "num_layers", "num_heads", "num_kv_heads", "head_dim", "mlp_dim"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be positive")
        if self.num_kv_heads >= 1 and self.num_heads % self.num_kv_heads:
            problems.append(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, RopeScaling):
            problems.append(f"rope_scaling={self.rope_scaling!r} must be None or a RopeScaling")
        if self.head_dim % 2:
            problems.append(f"head_dim={self.head_dim} must be even for RoPE")
        if self.remat not in REMAT_CHOICES:
            problems.append(f"remat={self.remat!r} is not one of {REMAT_CHOICES}")
        for name in ("dtype", "param_dtype"):
            try:
                jnp.dtype(getattr(self, name))
            except TypeError:
                problems.append(f"{name}={getattr(self, name)!r} is not a dtype name")
        if problems:
            raise ValueError("invalid DecoderConfig: " + "; ".join(problems))

    @property
    def compute_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.dtype)

    @property
    def weight_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.param_dtype)

    @property
    def num_params(self) -> int:
        """Parameter count N (the embedding counted once when tied)."""
        d, f, hd = self.embed_dim, self.mlp_dim, self.head_dim
        attention = d * hd * (2 * self.num_heads + 2 * self.num_kv_heads)
        layer = attention + 3 * d * f + 2 * d
        head = 0 if self.tie_embeddings else d * self.vocab_size
        return self.vocab_size * d + self.num_layers * layer + d + head

    def replace(self, **overrides) -> "DecoderConfig":
        return dataclasses.replace(self, **overrides)


PRESETS: dict[str, DecoderConfig] = {
    # A few-thousand-parameter model for unit tests.
    "tiny": DecoderConfig(
        vocab_size=256, embed_dim=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16,
        mlp_dim=128, rope_theta=10_000.0, tie_embeddings=True, max_length=256,
    ),
    "smollm2-135m": DecoderConfig(
        vocab_size=49_152, embed_dim=576, num_layers=30, num_heads=9, num_kv_heads=3, head_dim=64,
        mlp_dim=1536, rope_theta=100_000.0, norm_eps=1e-5, tie_embeddings=True, max_length=8192,
    ),
    "llama2-7b": DecoderConfig(
        vocab_size=32_000, embed_dim=4096, num_layers=32, num_heads=32, num_kv_heads=32, head_dim=128,
        mlp_dim=11_008, rope_theta=10_000.0, norm_eps=1e-5, tie_embeddings=False, max_length=4096,
    ),
    "llama3-8b": DecoderConfig(
        vocab_size=128_256, embed_dim=4096, num_layers=32, num_heads=32, num_kv_heads=8, head_dim=128,
        mlp_dim=14_336, rope_theta=500_000.0, norm_eps=1e-5, tie_embeddings=False, max_length=8192,
    ),
    "llama3.1-8b": DecoderConfig(
        vocab_size=128_256, embed_dim=4096, num_layers=32, num_heads=32, num_kv_heads=8, head_dim=128,
        mlp_dim=14_336, rope_theta=500_000.0, rope_scaling=RopeScaling("llama3", factor=8.0), norm_eps=1e-5,
        tie_embeddings=False, max_length=131_072,
    ),
    "llama3.2-1b": DecoderConfig(
        vocab_size=128_256, embed_dim=2048, num_layers=16, num_heads=32, num_kv_heads=8, head_dim=64,
        mlp_dim=8192, rope_theta=500_000.0, rope_scaling=RopeScaling("llama3", factor=32.0), norm_eps=1e-5,
        tie_embeddings=True, max_length=131_072,
    ),
}


def get_config(name: str, **overrides) -> DecoderConfig:
    """The preset ``name`` with ``overrides`` applied (e.g. ``num_layers=8, remat="full"``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown decoder preset {name!r}; valid presets: {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)
