"""Batched, jit-compiled sampling with a KV cache (see ``sampler.py``) and logit filters."""

from alignment.sampling.batching import powers_of_two
from alignment.sampling.filters import (
    SamplingParams,
    categorical,
    filter_logits,
    first_argmax,
    greedy_logits,
    sample_logits,
    scale_by_temperature,
    token_logprobs,
    top_k_logits,
    top_p_logits,
)
from alignment.sampling.sampler import SampleOutput, Sampler, SamplerConfig

__all__ = [
    "SampleOutput",
    "Sampler",
    "SamplerConfig",
    "SamplingParams",
    "categorical",
    "filter_logits",
    "first_argmax",
    "greedy_logits",
    "powers_of_two",
    "sample_logits",
    "scale_by_temperature",
    "token_logprobs",
    "top_k_logits",
    "top_p_logits",
]
