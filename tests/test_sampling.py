"""The KV-cache sampler on a tiny random decoder: cache vs recompute, EOS masks, padding, buckets."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignment.models import Decoder, get_config
from alignment.sampling import Sampler, SamplerConfig, SamplingParams, token_logprobs

GREEDY = SamplingParams(temperature=0.0)
PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16, 17]]
NEW = 10


@pytest.fixture(scope="module")
def model():
    # init_std 0.3: a random model whose greedy continuations vary (at 0.02 it repeats tokens).
    return Decoder(get_config("tiny", init_std=0.3), rngs=nnx.Rngs(0))


@functools.cache
def sampler_for(config: SamplerConfig) -> Sampler:
    """One sampler (and so one jit cache) per config, shared across tests to save compilations."""
    return Sampler(config)


@nnx.jit
def _full_forward(model, tokens, positions, kv_mask):
    return model(tokens, positions, kv_mask)[0]


def uncached_greedy(model, prompt, new_tokens):
    """Greedy decoding that re-runs the full forward pass (no cache) for every new token."""
    width = max(map(len, PROMPTS)) + new_tokens  # one shape for every prompt: one compilation
    tokens = np.zeros((1, width), np.int32)
    tokens[0, : len(prompt)] = prompt
    positions = np.arange(width, dtype=np.int32)[None]
    logprobs = []
    for n in range(len(prompt), len(prompt) + new_tokens):
        logits = _full_forward(model, tokens, positions, positions < n)[0, n - 1]
        tokens[0, n] = int(jnp.argmax(logits))
        logprobs.append(float(jax.nn.log_softmax(logits)[tokens[0, n]]))
    return tokens[0, len(prompt) : len(prompt) + new_tokens], np.array(logprobs)


@pytest.mark.parametrize("decode_layers", ["scan", "unrolled"])
def test_cached_greedy_equals_uncached_greedy(model, decode_layers):
    out = sampler_for(SamplerConfig(max_new_tokens=NEW, sampling=GREEDY, decode_layers=decode_layers))(model, PROMPTS, None)
    assert out.tokens.shape == (len(PROMPTS), 16 + NEW)
    for b, prompt in enumerate(PROMPTS):
        want_tokens, want_logprobs = uncached_greedy(model, prompt, NEW)
        np.testing.assert_array_equal(out.response_tokens[b], want_tokens)
        np.testing.assert_allclose(out.model_logprobs[b, 16:], want_logprobs, atol=1e-4)
    np.testing.assert_array_equal(out.sampling_logprobs, 0.0)  # greedy: a point mass


def test_sampling_logprobs_equal_full_forward_recompute(model):
    params = SamplingParams(temperature=0.8, top_k=40, top_p=0.9)
    config = SamplerConfig(max_new_tokens=NEW, eos_ids=(3, 7, 11), sampling=params)
    out = Sampler(config)(model, PROMPTS, jax.random.key(0))
    valid = out.prompt_mask | out.response_mask
    logits = _full_forward(model, out.tokens, out.positions, valid)
    p = out.prompt_length
    # Column t's logits predict token t + 1.
    sampling, model_lp = token_logprobs(logits[:, p - 1 : -1], out.response_tokens, params)
    mask = np.asarray(out.response_mask[:, p:])
    np.testing.assert_allclose(np.where(mask, sampling, 0.0), out.sampling_logprobs[:, p:], atol=1e-4)
    np.testing.assert_allclose(np.where(mask, model_lp, 0.0), out.model_logprobs[:, p:], atol=1e-4)
    assert (np.asarray(out.sampling_logprobs)[np.asarray(out.response_mask)] < 0).any()


def test_same_key_same_samples_other_key_other_samples(model):
    sampler = sampler_for(SamplerConfig(max_new_tokens=NEW, sampling=SamplingParams(temperature=1.0)))
    first, again, other = (sampler(model, PROMPTS, jax.random.key(k)) for k in (1, 1, 2))
    np.testing.assert_array_equal(first.tokens, again.tokens)
    assert not np.array_equal(first.tokens, other.tokens)


def _first_eos(row, eos_ids):
    hits = np.flatnonzero(np.isin(row, eos_ids))
    return hits[0] if hits.size else None


@pytest.mark.parametrize("sampling", [GREEDY, SamplingParams(temperature=1.0)], ids=["greedy", "sampled"])
def test_eos_masks_rows_stopping_at_different_steps(model, sampling):
    # EOS ids = tokens that this model emits mid-response for some prompts (found greedily).
    full = sampler_for(SamplerConfig(max_new_tokens=NEW, sampling=sampling))(model, PROMPTS, jax.random.key(3))
    responses = np.asarray(full.response_tokens)
    eos_ids = (int(responses[0, 4]), int(responses[1, 1]))
    sampler = Sampler(SamplerConfig(max_new_tokens=NEW, eos_ids=eos_ids, pad_id=255, sampling=sampling))
    out = sampler(model, PROMPTS, jax.random.key(3))
    p = out.prompt_length
    tokens, mask = np.asarray(out.response_tokens), np.asarray(out.response_mask[:, p:])
    lengths = []
    for b in range(len(PROMPTS)):
        stop = _first_eos(responses[b], eos_ids)
        n = NEW if stop is None else stop + 1  # the EOS is the last valid token
        lengths.append(n)
        np.testing.assert_array_equal(tokens[b, :n], responses[b, :n])
        np.testing.assert_array_equal(mask[b], np.arange(NEW) < n)
        assert (tokens[b, n:] == 255).all()
        for logprobs in (out.sampling_logprobs, out.model_logprobs):
            assert (np.asarray(logprobs)[b, p + n :] == 0.0).all()
    assert len(set(lengths)) > 1 and min(lengths) < NEW
    np.testing.assert_array_equal(out.response_lengths, lengths)
    assert not np.asarray(out.prompt_mask[:, p:]).any() and not np.asarray(out.response_mask[:, :p]).any()


class CountingDecoder(Decoder):
    """The tiny decoder, counting its forward passes at run time (inside the compiled loop)."""

    calls = 0

    def hidden_states(self, *args, **kwargs):
        jax.debug.callback(lambda: setattr(CountingDecoder, "calls", CountingDecoder.calls + 1))
        return super().hidden_states(*args, **kwargs)


def test_loop_stops_as_soon_as_every_row_has_emitted_eos(model):
    first = sampler_for(SamplerConfig(max_new_tokens=NEW, sampling=GREEDY))(model, PROMPTS, None).response_tokens[:, 0]
    counting = CountingDecoder(get_config("tiny", init_std=0.3), rngs=nnx.Rngs(0))  # the same weights
    out = Sampler(SamplerConfig(max_new_tokens=NEW, eos_ids=tuple(np.asarray(first).tolist()), sampling=GREEDY))(counting, PROMPTS, None)
    jax.effects_barrier()
    assert CountingDecoder.calls == 1  # the prefill only: no decode step ran
    np.testing.assert_array_equal(out.response_lengths, 1)
    np.testing.assert_array_equal(out.response_tokens[:, 0], first)


def test_left_padded_batch_equals_one_prompt_at_a_time(model):
    sampler = sampler_for(SamplerConfig(max_new_tokens=NEW, sampling=GREEDY))
    batched = sampler(model, PROMPTS, None)
    for b, prompt in enumerate(PROMPTS):
        alone = sampler(model, [prompt], None)
        np.testing.assert_array_equal(batched.response_tokens[b], alone.response_tokens[0])
        np.testing.assert_allclose(batched.model_logprobs[b, -NEW:], alone.model_logprobs[0, -NEW:], atol=1e-5)


def test_right_padded_array_with_lengths_equals_lists(model):
    array = np.zeros((len(PROMPTS), 7), np.int32)
    for b, prompt in enumerate(PROMPTS):
        array[b, : len(prompt)] = prompt
    sampler = sampler_for(SamplerConfig(max_new_tokens=NEW, sampling=GREEDY))
    from_lists = sampler(model, PROMPTS, None)
    compilations = sampler.num_compilations
    from_array = sampler(model, array, None, lengths=[len(p) for p in PROMPTS])
    np.testing.assert_array_equal(from_array.tokens, from_lists.tokens)
    assert sampler.num_compilations == compilations


def test_bucketing_bounds_compilations(model):
    sampler = Sampler(SamplerConfig(max_new_tokens=4, sampling=GREEDY, prompt_buckets=(8, 16), batch_buckets=(2, 4)))
    batches = [PROMPTS[:1], PROMPTS[:2], PROMPTS[1:3], PROMPTS, PROMPTS[:3], [[1] * 12, [2] * 9], [[3] * 16]]
    for prompts in batches:
        assert sampler(model, prompts, None).tokens.shape[0] == len(prompts)
    # Buckets used: (2, 8), (4, 8), (2, 16): three programs for seven batches.
    assert sampler.num_compilations == 3


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: SamplerConfig(max_new_tokens=0), "max_new_tokens"),
        (lambda: SamplerConfig(max_new_tokens=2, prompt_buckets=(8, 4)), "prompt_buckets"),
        (lambda: SamplerConfig(max_new_tokens=2, sampling=0.5), "sampling"),
        (lambda: SamplerConfig(max_new_tokens=2, decode_layers="unroll"), "decode_layers.*'auto', 'scan', 'unrolled'"),
    ],
)
def test_bad_config_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_raise(model):
    sampler = Sampler(SamplerConfig(max_new_tokens=2, prompt_buckets=(8,)))
    with pytest.raises(ValueError, match="prompt_buckets"):
        sampler(model, [[1] * 9], jax.random.key(0))
    with pytest.raises(ValueError, match="key"):
        sampler(model, [[1]], None)
    with pytest.raises(ValueError, match="empty"):
        sampler(model, [[1], []], jax.random.key(0))
    with pytest.raises(ValueError, match="lengths"):
        sampler(model, np.ones((2, 4), np.int32), jax.random.key(0), lengths=[1, 5])
