"""The sampler on 8 simulated devices: sharded parameters and batch give the unsharded results."""

import jax
import numpy as np
import pytest
from flax import nnx

from alignment.models import Decoder, get_config
from alignment.models.partitioning import shard_model
from alignment.parallel import make_mesh
from alignment.sampling import Sampler, SamplerConfig, SamplingParams

PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16, 17], [18], [19, 20, 21], [22, 23], [24]]


def _model():
    return Decoder(get_config("tiny", init_std=0.3), rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    "sampling, num_prompts",
    [(SamplingParams(temperature=0.0), 8), (SamplingParams(temperature=0.9, top_k=50, top_p=0.95), 6)],
    ids=["greedy", "sampled-with-batch-padding"],
)
@pytest.mark.parametrize("decode_layers", ["scan", "unrolled"])
def test_sharded_sampling_equals_unsharded(sampling, num_prompts, decode_layers):
    if jax.device_count() < 8:
        pytest.skip("needs 8 (simulated) devices")
    config = SamplerConfig(max_new_tokens=8, eos_ids=(7,), sampling=sampling, decode_layers=decode_layers)
    key = jax.random.key(0)
    prompts = PROMPTS[:num_prompts]
    plain = Sampler(config)(_model(), prompts, key)

    mesh = make_mesh(data=2, fsdp=2, model=2)
    sharded_model = shard_model(_model(), mesh)
    assert not sharded_model.layers.q[...].sharding.is_fully_replicated
    sampler = Sampler(config, mesh=mesh)
    sharded = sampler(sharded_model, prompts, key)

    # 6 prompts pad to the batch bucket 8, a multiple of the 4 batch shards (data x fsdp).
    assert sharded.tokens.shape == plain.tokens.shape
    if num_prompts == 8:
        assert sharded.tokens.sharding.spec[0] == ("data", "fsdp")
    np.testing.assert_array_equal(sharded.tokens, plain.tokens)
    np.testing.assert_array_equal(sharded.response_mask, plain.response_mask)
    np.testing.assert_allclose(sharded.model_logprobs, plain.model_logprobs, atol=1e-4)
    np.testing.assert_allclose(sharded.sampling_logprobs, plain.sampling_logprobs, atol=1e-4)


def test_batch_bucket_is_a_multiple_of_the_batch_shards():
    if jax.device_count() < 8:
        pytest.skip("needs 8 (simulated) devices")
    mesh = make_mesh(data=2, fsdp=2, model=2)
    sampler = Sampler(SamplerConfig(max_new_tokens=2, batch_buckets=(2, 6, 8)), mesh=mesh)
    with pytest.raises(ValueError, match="divisible by 4"):
        sampler(_model(), PROMPTS[:1] * 9, jax.random.key(0))
