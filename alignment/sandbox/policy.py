"""The sandbox's base policy pi_0: a tiny decoder fitted by SFT to the response grammar.

The corpus holds ``responses_per_prompt`` grammar responses to every sandbox prompt; the model
is trained with ``alignment.training.sft`` (AdamW, linear warm-up then cosine decay) on batches
of ``batch_size`` chats of a shuffled epoch, right-padded to one of two lengths (``short_length``
or the corpus's longest chat: two compiled shapes, a third less padding than one), and samples
with ``alignment.sampling.Sampler``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from typing import Sequence

import jax
import numpy as np
import optax
from flax import nnx

from alignment.models import Decoder, DecoderConfig, get_config
from alignment.models.tokenizer import Tokenizer
from alignment.sampling import Sampler, SamplerConfig, SamplingParams, powers_of_two
from alignment.training.sft import encode_example, make_batch, train_step

from alignment.sandbox.preferences import context
from alignment.sandbox.prompts import Prompt
from alignment.sandbox.responses import ResponseGrammar, sample_response


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Shape and training schedule of the base policy (vocabulary size comes from the tokenizer)."""

    embed_dim: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 16
    mlp_dim: int = 192
    responses_per_prompt: int = 4
    steps: int = 400
    batch_size: int = 24
    short_length: int = 64
    learning_rate: float = 1e-2
    warmup_steps: int = 30
    weight_decay: float = 0.01
    max_new_tokens: int = 112

    def __post_init__(self):
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"PolicyConfig needs 0 <= warmup_steps < steps; got warmup_steps={self.warmup_steps}, steps={self.steps}")

    def decoder_config(self, vocab_size: int) -> DecoderConfig:
        return get_config(
            "tiny", vocab_size=vocab_size, embed_dim=self.embed_dim, num_layers=self.num_layers,
            num_heads=self.num_heads, num_kv_heads=self.num_kv_heads, head_dim=self.head_dim,
            mlp_dim=self.mlp_dim, max_length=256,
        )


def sft_corpus(prompts: Sequence[Prompt], rng: np.random.Generator, per_prompt: int, grammar: ResponseGrammar) -> list[tuple[Prompt, str]]:
    """``per_prompt`` grammar responses to each prompt."""
    return [(p, sample_response(p.topic, rng, grammar)) for p in prompts for _ in range(per_prompt)]


def messages(prompt: Prompt) -> list[dict[str, str]]:
    """The chat messages of a sandbox prompt, for the chat template."""
    return [m.as_dict() for m in context(prompt)]


def train_policy(
    tokenizer: Tokenizer, corpus: Sequence[tuple[Prompt, str]], config: PolicyConfig, seed: int
) -> tuple[Decoder, dict]:
    """Fits a fresh decoder to ``corpus``; returns it and a log (loss curve, final loss, seconds)."""
    start = time.perf_counter()
    examples = [encode_example(tokenizer, messages(p), r) for p, r in corpus]
    model = Decoder(config.decoder_config(tokenizer.vocab_size), rngs=nnx.Rngs(seed))
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, config.warmup_steps, config.steps)
    optimizer = nnx.Optimizer(model, optax.adamw(schedule, weight_decay=config.weight_decay), wrt=nnx.Param)
    batches = itertools.islice(_batches([len(ids) for ids, _ in examples], config, np.random.default_rng(seed)), config.steps)
    losses = []
    for rows, length in batches:
        batch = make_batch([examples[i] for i in rows], length, tokenizer.pad_id)
        losses.append(train_step(model, optimizer, batch)["nll"])
    losses = [float(x) for x in jax.device_get(losses)]
    log = {"losses": losses, "final_loss": float(np.mean(losses[-20:])), "examples": len(examples),
           "seconds": time.perf_counter() - start}
    return model, log


def _batches(lengths: Sequence[int], config: PolicyConfig, rng: np.random.Generator):
    """Endless ``(example indices, padded length)`` batches; every epoch reshuffled.

    The padded lengths are ``short_length`` and the longest example rounded up to 16; each
    batch holds examples of one length bucket (a bucket's last partial batch waits for the
    next epoch).
    """
    longest = 16 * math.ceil(max(lengths) / 16)
    buckets = np.array(sorted({min(config.short_length, longest), longest}))
    bucket_of = np.searchsorted(buckets, lengths)
    while True:
        order = rng.permutation(len(lengths))
        batches = []
        for b, length in enumerate(buckets):
            members = order[bucket_of[order] == b]
            full = len(members) - len(members) % config.batch_size
            batches += [(members[i : i + config.batch_size], int(length)) for i in range(0, full, config.batch_size)]
        if not batches:
            raise ValueError(f"no length bucket of the corpus holds a full batch of {config.batch_size} examples")
        yield from (batches[i] for i in rng.permutation(len(batches)))


@functools.cache
def _sampler(config: SamplerConfig) -> Sampler:
    """One sampler (and so one set of compiled programs) per configuration."""
    return Sampler(config)


def sample_texts(
    model: Decoder, tokenizer: Tokenizer, prompts: Sequence[Prompt], key: jax.Array, *,
    max_new_tokens: int, temperature: float = 1.0, batch_size: int = 256,
) -> list[str]:
    """One sampled response text per prompt (special tokens removed); ``batch_size`` a power of two >= 16."""
    sampler = _sampler(SamplerConfig(
        max_new_tokens=max_new_tokens, eos_ids=(tokenizer.eos_id,), pad_id=tokenizer.pad_id,
        sampling=SamplingParams(temperature=temperature), prompt_buckets=(32, 64),
        batch_buckets=powers_of_two(16, batch_size),
    ))
    texts = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        ids = [tokenizer.encode(tokenizer.apply_chat_template(messages(p))) for p in chunk]
        out = sampler(model, ids, jax.random.fold_in(key, start))
        tokens, mask = jax.device_get((out.response_tokens, out.response_mask[:, out.prompt_length :]))
        texts += [tokenizer.decode(row[m].tolist(), skip_special_tokens=True) for row, m in zip(tokens, mask)]
    return texts
