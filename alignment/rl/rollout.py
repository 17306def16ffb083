"""Sampling G responses per prompt and decoding them for the reward functions.

``sample_groups`` runs the sampler once on ``len(prompts) * G`` rows (each prompt repeated G
times, consecutively), so a fixed prompts-per-step and G keep one compiled sampling program
per prompt-length bucket. ``Samples.texts`` are the responses without special tokens (what a
reward model or a judge reads); ``Samples.ended`` says which responses emitted an EOS token
within ``max_new_tokens`` (the others were cut off). Both are complete on every process of a
multi-process mesh (``alignment.parallel.to_host``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx

from alignment.models.tokenizer import Tokenizer
from alignment.parallel import to_host
from alignment.sampling import SampleOutput, Sampler


@dataclasses.dataclass
class Samples:
    """A batch of sampled responses: the sampler's output and, on the host, texts and EOS flags."""

    output: SampleOutput
    texts: list[str]
    ended: np.ndarray  # bool [B]: the response emitted an EOS id
    lengths: np.ndarray  # int [B]: response tokens, the EOS included


def sample_groups(
    sampler: Sampler, policy: nnx.Module, tokenizer: Tokenizer, prompt_ids: Sequence[Sequence[int]], group_size: int, key: jax.Array
) -> Samples:
    """``group_size`` responses to each prompt, rows ``[i * G, (i + 1) * G)`` for prompt i."""
    rows = [ids for ids in prompt_ids for _ in range(group_size)]
    output = sampler(policy, rows, key)
    tokens, mask = to_host((output.response_tokens, output.response_mask[:, output.prompt_length :]))
    eos = np.isin(tokens, np.asarray(sampler.config.eos_ids)) & mask
    texts = [tokenizer.decode(row[m].tolist(), skip_special_tokens=True) for row, m in zip(tokens, mask)]
    return Samples(output, texts, eos.any(axis=1), mask.sum(axis=1))
