"""What a decoder's work costs, for model FLOP utilisation (MFU) and memory-bandwidth utilisation.

With ``N`` = the parameters that enter matmuls (the tied embedding counted once, as the output
head; the lookup is no matmul) and ``N_head`` = ``vocab x embed``:

    forward FLOPs   = 2 B T (N - N_head) + 2 B T_logits N_head + 4 B L H T S hd
                      (projections, the output head at T_logits positions, QK^T and PV over
                      S key slots with no causal saving: the dense einsums XLA runs)
    train FLOPs     = 3 x forward (the backward pass is two matmuls per forward matmul)
    decode bytes    = parameter bytes + the KV cache read by one decode step
                      (2 L B S KV hd x the cache dtype's bytes): a decode step reads every
                      weight once, so it is memory-bound and its utilisation is bytes / s over
                      the memory bandwidth

``xla_flops`` reads XLA's own count of a program (``cost_analysis``), the check that the
formula counts what runs. XLA counts the body of a loop once, whatever its trip count, so count
a program whose layers are unrolled (``layer_weights=model.layers.unstacked_weights()``), not
the layer scan. ``device_peak`` gives the dense bfloat16 FLOP/s and the memory
bandwidth of the accelerators we run on (vendor data sheets), ``None`` elsewhere (on a CPU the
benchmarks measure both instead).
"""

from __future__ import annotations

import jax
import numpy as np

from alignment.models.config import DecoderConfig

# device_kind -> (dense bfloat16 FLOP/s, memory bytes/s), from the vendors' data sheets.
ACCELERATOR_PEAKS = {
    "NVIDIA H100 80GB HBM3": (989e12, 3.35e12),  # SXM
    "NVIDIA H100 PCIe": (756e12, 2.0e12),
    "NVIDIA H200": (989e12, 4.8e12),
    "NVIDIA A100-SXM4-80GB": (312e12, 2.04e12),
    "TPU v4": (275e12, 1.2e12),
    "TPU v5 lite": (197e12, 819e9),
    "TPU v5": (459e12, 2.765e12),  # v5p
    "TPU v6 lite": (918e12, 1.64e12),
}


def forward_flops(config: DecoderConfig, batch: int, length: int, *, logit_positions: int | None = None,
                  key_slots: int | None = None) -> float:
    """Matmul FLOPs of one forward pass of ``batch`` rows of ``length`` tokens (module docstring);
    ``logit_positions`` (default ``length``) rows reach the output head, ``key_slots`` (default
    ``length``) keys are attended."""
    c = config
    head = c.vocab_size * c.embed_dim
    body = c.num_params - head - (0 if c.tie_embeddings else head)  # the untied input embedding is a lookup
    logits = length if logit_positions is None else logit_positions
    slots = length if key_slots is None else key_slots
    attention = 4 * batch * c.num_layers * c.num_heads * length * slots * c.head_dim
    return 2.0 * batch * (length * body + logits * head) + attention


def train_flops(config: DecoderConfig, batch: int, length: int) -> float:
    """Forward and backward matmul FLOPs: ``3 x forward_flops``."""
    return 3.0 * forward_flops(config, batch, length)


def decode_step_bytes(config: DecoderConfig, batch: int, cache_length: int, parameter_bytes: float) -> float:
    """Bytes one decode step must read: every parameter once and the KV cache of ``cache_length`` slots."""
    c = config
    cache = 2 * c.num_layers * batch * cache_length * c.num_kv_heads * c.head_dim * np.dtype(c.compute_dtype).itemsize
    return parameter_bytes + cache


def xla_flops(program: jax.stages.Lowered | jax.stages.Compiled) -> float:
    """The FLOPs XLA counts in a lowered or compiled program (all operations, matmuls and the
    rest; a loop's body once)."""
    analysis = program.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # one entry per program on some versions
        analysis = analysis[0]
    return float(analysis["flops"])


def device_peak(device: jax.Device | None = None) -> tuple[float, float] | None:
    """``(dense bfloat16 FLOP/s, memory bytes/s)`` of an accelerator in ``ACCELERATOR_PEAKS``
    (by its ``device_kind``), else ``None``."""
    device = device or jax.devices()[0]
    return ACCELERATOR_PEAKS.get(device.device_kind)
