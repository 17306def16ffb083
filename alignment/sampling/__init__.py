"""Batched, jit-compiled sampling with a KV cache (see ``sampler.py``) and logit filters."""

from alignment.sampling.filters import (
    SamplingParams,
    filter_logits,
    greedy_logits,
    sample_logits,
    scale_by_temperature,
    token_logprobs,
    top_k_logits,
    top_p_logits,
)

__all__ = [
    "SamplingParams",
    "filter_logits",
    "greedy_logits",
    "sample_logits",
    "scale_by_temperature",
    "token_logprobs",
    "top_k_logits",
    "top_p_logits",
]
