"""LoRA adapters: exact identity at B = 0, the adapters-off base, merging, sharding, what trains."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignment.models import Decoder, get_config
from alignment.models import lora  # noqa: E402
from alignment.models.heads import RewardModel
from alignment.models.partitioning import shard_model
from alignment.parallel import make_mesh
from alignment.sampling import Sampler, SamplerConfig

TINY = get_config("tiny")


def _inputs(batch=2, length=9, seed=1):
    tokens = jax.random.randint(jax.random.key(seed), (batch, length), 0, TINY.vocab_size, dtype=jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
    return tokens, positions, jnp.ones((batch, length), bool)


@nnx.jit
def _logits(model, tokens, positions, kv_mask):
    return model(tokens, positions, kv_mask)[0]


def _randomise_b(model: Decoder, seed: int = 3) -> Decoder:
    """Non-zero B everywhere (a trained adapter), so the adapters change the outputs."""
    for i, target in enumerate(model.lora.targets):
        b = getattr(model.layers, lora.lora_names(target)[1])
        b[...] = 0.05 * jax.random.normal(jax.random.key(seed + i), b.shape, b.dtype)
    return model


def _adapted(config=lora.LoRAConfig(rank=4, alpha=8.0)) -> tuple[Decoder, Decoder]:
    base = Decoder(TINY, rngs=nnx.Rngs(0))
    return base, lora.add_adapters(nnx.clone(base), config)


def test_fresh_adapters_leave_the_model_exactly_unchanged():
    base, adapted = _adapted()
    inputs = _inputs()
    np.testing.assert_array_equal(_logits(adapted, *inputs), _logits(base, *inputs))
    a = adapted.layers.q_lora_a[...]
    assert a.shape == (TINY.num_layers, TINY.embed_dim, 4) and float(jnp.abs(a).max()) > 0
    assert adapted.layers.down_lora_b.shape == (TINY.num_layers, 4, TINY.embed_dim)
    assert adapted.layers.o_lora_a.shape == (TINY.num_layers, TINY.num_heads, TINY.head_dim, 4)


def test_adapters_off_is_the_base_and_merging_keeps_the_outputs():
    base, adapted = _adapted()
    _randomise_b(adapted)
    inputs = _inputs()
    with_adapters = _logits(adapted, *inputs)
    assert float(jnp.abs(with_adapters - _logits(base, *inputs)).max()) > 1e-3  # the adapters matter
    np.testing.assert_array_equal(_logits(lora.adapters_off(adapted), *inputs), _logits(base, *inputs))
    assert adapted.lora is not None  # the view did not switch the model's own adapters off
    plain = lora.merged(adapted)
    assert plain.lora is None and not any(isinstance(v, lora.LoRAParam) for _, v in nnx.iter_graph(plain))
    np.testing.assert_allclose(_logits(plain, *inputs), with_adapters, atol=2e-5)


def test_only_some_targets_and_the_unrolled_decode_weights():
    base, adapted = _adapted(lora.LoRAConfig(rank=2, alpha=2.0, targets=("v", "up")))
    _randomise_b(adapted)
    assert not hasattr(adapted.layers, "q_lora_a") and hasattr(adapted.layers, "up_lora_b")
    merged = adapted.layers.unstacked_weights(adapted.lora)
    assert set(merged[0]) == set(base.layers.unstacked_weights()[0])  # adapters folded into the weights
    tokens, positions, kv_mask = _inputs()
    np.testing.assert_allclose(adapted(tokens, positions, kv_mask, layer_weights=merged)[0],
                               _logits(adapted, tokens, positions, kv_mask), atol=2e-5)


def test_gradients_reach_only_adapters_and_heads():
    backbone = lora.add_adapters(Decoder(TINY, rngs=nnx.Rngs(0)), lora.LoRAConfig(rank=2))
    model = RewardModel(backbone, rngs=nnx.Rngs(1))
    wrt = lora.trainable(model)
    updated = nnx.state(model, wrt)
    names = {"/".join(map(str, path)) for path, _ in nnx.to_flat_state(updated)}
    assert names == {"kernel", "bias"} | {f"backbone/layers/{n}" for t in lora.PROJECTIONS for n in lora.lora_names(t)}
    assert lora.trainable(RewardModel(Decoder(TINY, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))) is nnx.Param

    tokens, positions, kv_mask = _inputs()

    def loss(model):
        return model(tokens, positions, kv_mask).sum()

    grads = nnx.grad(loss, argnums=nnx.DiffState(0, wrt))(model)
    assert {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(grads)} == names
    b_grad = grads["backbone"]["layers"]["q_lora_b"][...]
    assert float(jnp.abs(b_grad).max()) > 0  # B = 0 still gets a gradient through A


def test_adapters_shard_by_the_logical_rules():
    mesh = make_mesh(data=2, fsdp=2, model=2)
    _, adapted = _adapted(lora.LoRAConfig(rank=4))
    shard_model(adapted, mesh)
    assert adapted.layers.q_lora_a[...].sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", None)
    assert adapted.layers.gate_lora_b[...].sharding.spec == jax.sharding.PartitionSpec(None, None, "model")
    assert adapted.layers.o_lora_a[...].sharding.spec == jax.sharding.PartitionSpec(None, "model", None, None)


def test_the_sampler_draws_from_the_adapted_policy():
    base, adapted = _adapted()
    _randomise_b(adapted, seed=11)
    sampler = Sampler(SamplerConfig(max_new_tokens=6, eos_ids=(TINY.vocab_size - 1,), decode_layers="unrolled"))
    prompts = [[5, 6, 7], [8, 9]]
    out = sampler(adapted, prompts, jax.random.key(0))
    again = sampler(lora.merged(adapted), prompts, jax.random.key(0))
    np.testing.assert_array_equal(out.tokens, again.tokens)
    np.testing.assert_allclose(out.model_logprobs, again.model_logprobs, atol=1e-4)


@pytest.mark.parametrize("field, value, message", [
    ("rank", 0, "rank"), ("alpha", -1.0, "alpha"), ("targets", ("q", "attn"), "targets"), ("targets", (), "targets"),
])
def test_bad_configs_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(lora.LoRAConfig(), **{field: value})


def test_adapters_are_added_once():
    _, adapted = _adapted()
    with pytest.raises(ValueError, match="already has adapters"):
        lora.add_adapters(adapted, lora.LoRAConfig())
