"""How responses are sampled (``RolloutConfig``), the prompt stream, encoding prompts, sampling G
responses per prompt and decoding them for the reward functions.

``RolloutConfig`` holds the lengths and the sampling distribution once: the learner's rollouts,
the reference stage's K base samples (r_ref estimates pi_0's rewards under the distribution
the learner samples from at step 0) and the judge's samples all read the same one.

``encode_prompts`` applies the policy's chat template and checks every prompt against the one
compiled prompt length (an error names how many are too long, the first and its length).

``sample_groups`` runs the sampler once on ``len(prompts) * G`` rows (each prompt repeated G
times, consecutively), so a fixed prompts-per-step and G keep one compiled sampling program
per prompt-length bucket. ``Samples.texts`` are the responses without special tokens (what a
reward model or a judge reads); ``Samples.ended`` says which responses emitted an EOS token
within ``max_new_tokens`` (the others were cut off). Both are complete on every process of a
multi-process mesh (``alignment.parallel.to_host``). ``trim`` cuts a batch to its longest
response's bucket (``RolloutConfig.response_columns``) for the passes that follow sampling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx

from alignment import nested
from alignment.models.tokenizer import Tokenizer
from alignment.parallel import to_host
from alignment.sampling import SampleOutput, Sampler, SamplerConfig, SamplingParams


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    """The lengths and the sampling distribution of every sampled response.

    Attributes:
      max_prompt_length: the prompts' padded length in tokens of the chat-templated prompt (one
        compiled shape; a longer prompt is an error naming this field).
      max_new_tokens: the response limit.
      temperature, top_k, top_p: the sampling distribution (``alignment.sampling.SamplingParams``).
      length_buckets: after sampling, the learner's base-policy pass, advantages and update run
        over the longest response of the batch rounded up to one of this many evenly spaced
        lengths (``response_columns``), so each bucket is one compiled program of each; 1: always
        ``max_new_tokens`` columns.
    """

    max_prompt_length: int = 64
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    length_buckets: int = 4

    def __post_init__(self):
        nested.check_fields(self, positive=("max_prompt_length", "max_new_tokens", "length_buckets"))
        if self.length_buckets > self.max_new_tokens:
            raise ValueError(f"rollout.length_buckets={self.length_buckets} must be <= max_new_tokens={self.max_new_tokens}")
        self.sampling_params()

    def response_columns(self, longest: int) -> int:
        """The smallest bucket ``ceil(k * max_new_tokens / length_buckets)``, k = 1 .. length_buckets,
        that holds a response of ``longest`` tokens."""
        n, b = self.max_new_tokens, self.length_buckets
        return next(columns for columns in (-(-k * n // b) for k in range(1, b + 1)) if columns >= longest)

    def sampling_params(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)

    def sampler_config(self, eos_ids: Sequence[int], pad_id: int, batch_sizes: Sequence[int]) -> SamplerConfig:
        """The sampler of these settings: one prompt bucket (``max_prompt_length``) and a batch
        bucket per size in ``batch_sizes``, so that each batch size is one compiled program."""
        return SamplerConfig(max_new_tokens=self.max_new_tokens, eos_ids=tuple(eos_ids), pad_id=pad_id,
                             sampling=self.sampling_params(), prompt_buckets=(self.max_prompt_length,),
                             batch_buckets=tuple(sorted(set(batch_sizes))))

    def encode(self, tokenizer: Tokenizer, chats: Sequence) -> list[list[int]]:
        """``encode_prompts`` against ``max_prompt_length``."""
        return encode_prompts(tokenizer, chats, self.max_prompt_length, "rollout.max_prompt_length")


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


def encode_chat(tokenizer: Tokenizer, chat) -> list[int]:
    """The token ids of ``chat`` under the tokenizer's chat template, ready for the response."""
    return tokenizer.encode(tokenizer.apply_chat_template([dict(m) for m in chat]))


def encode_prompts(tokenizer: Tokenizer, chats: Sequence, max_prompt_length: int, field: str) -> list[list[int]]:
    """Every chat encoded (``encode_chat``); a ``ValueError`` naming ``field`` (the setting to
    raise) when any is longer than ``max_prompt_length`` tokens, or when there are none."""
    ids = [encode_chat(tokenizer, chat) for chat in chats]
    if not ids:
        raise ValueError("need at least one prompt")
    too_long = [i for i, row in enumerate(ids) if len(row) > max_prompt_length]
    if too_long:
        raise ValueError(
            f"{len(too_long)} prompts are longer than {field}={max_prompt_length} tokens (first: prompt {too_long[0]}, "
            f"{len(ids[too_long[0]])} tokens); raise {field} or drop them"
        )
    return ids


@dataclasses.dataclass
class Samples:
    """A batch of sampled responses: the sampler's output and, on the host, texts and EOS flags."""

    output: SampleOutput
    texts: list[str]
    ended: np.ndarray  # bool [B]: the response emitted an EOS id
    lengths: np.ndarray  # int [B]: response tokens, the EOS included


def trim(output: SampleOutput, columns: int) -> SampleOutput:
    """``output`` with its first ``columns`` response columns (the rest must be padding)."""
    width = output.prompt_length + columns
    return output.replace(**{name: getattr(output, name)[:, :width] for name in
                             ("tokens", "prompt_mask", "response_mask", "sampling_logprobs", "model_logprobs")})


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
