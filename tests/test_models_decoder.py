"""Decoder: cache equivalence, left padding, remat, scan depth, sharding, presets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignment.models import Decoder, get_config
from alignment.models.partitioning import create_sharded, shard_model
from alignment.parallel import make_mesh

TINY = get_config("tiny")


def _inputs(batch, length, vocab, seed=1):
    tokens = jax.random.randint(jax.random.key(seed), (batch, length), 0, vocab, dtype=jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
    return tokens, positions, jnp.ones((batch, length), bool)


@nnx.jit
def _forward(model, tokens, positions, kv_mask):
    return model(tokens, positions, kv_mask)[0]


@nnx.jit
def _forward_cached(model, tokens, positions, kv_mask, cache, cache_index, layer_weights=None):
    return model(tokens, positions, kv_mask, cache, cache_index, layer_weights)


@pytest.fixture(scope="module")
def model():
    return Decoder(TINY, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("layer_loop", ["scan", "unrolled"])
def test_cache_chunks_equal_full_forward(model, layer_loop):
    tokens, positions, kv_mask = _inputs(2, 12, TINY.vocab_size)
    full = _forward(model, tokens, positions, kv_mask)
    layer_weights = model.layers.unstacked_weights() if layer_loop == "unrolled" else None
    cache = model.init_cache(2, 16)
    assert cache.k.shape == (TINY.num_layers, 2, 16, TINY.num_kv_heads, TINY.head_dim)
    cache_mask = jnp.ones((2, 16), bool)
    chunks = []
    for start, stop in [(0, 5), (5, 6), (6, 12)]:
        logits, cache = _forward_cached(
            model, tokens[:, start:stop], positions[:, start:stop], cache_mask, cache, jnp.int32(start), layer_weights
        )
        chunks.append(logits)
    np.testing.assert_allclose(jnp.concatenate(chunks, axis=1), full, atol=1e-5)
    if layer_weights is not None:
        uncached = model(tokens, positions, kv_mask, layer_weights=layer_weights)[0]
        np.testing.assert_allclose(uncached, full, atol=1e-5)
        with pytest.raises(ValueError, match="layer_weights has 1 layers; the model has 2"):
            model(tokens, positions, kv_mask, layer_weights=layer_weights[:1])


def test_left_padding_invariance(model):
    tokens, positions, _ = _inputs(1, 7, TINY.vocab_size)
    pad = 3
    padded = jnp.concatenate([jnp.zeros((1, pad), jnp.int32), tokens], axis=1)
    padded_positions = jnp.concatenate([jnp.zeros((1, pad), jnp.int32), positions], axis=1)
    mask = jnp.arange(pad + 7)[None] >= pad
    reference = _forward(model, tokens, positions, jnp.ones((1, 7), bool))
    out = _forward(model, padded, padded_positions, mask)
    assert np.isfinite(np.asarray(out)).all(), "padding queries must not give NaN"
    np.testing.assert_allclose(out[:, pad:], reference, atol=1e-5)
    # The same through the cache: prefill the padded prompt, then one decode step.
    cache = model.init_cache(1, 12)
    cache_mask = jnp.arange(12)[None] >= pad
    _, cache = _forward_cached(model, padded, padded_positions, cache_mask, cache, jnp.int32(0))
    step, _ = _forward_cached(model, tokens[:, :1], jnp.array([[7]]), cache_mask, cache, jnp.int32(pad + 7))
    extended = jnp.concatenate([tokens, tokens[:, :1]], axis=1)
    full = _forward(model, extended, jnp.arange(8)[None], jnp.ones((1, 8), bool))
    np.testing.assert_allclose(step[:, 0], full[:, -1], atol=1e-5)


def test_fully_masked_rows_are_finite(model):
    tokens, positions, _ = _inputs(2, 5, TINY.vocab_size)
    out = _forward(model, tokens, positions, jnp.zeros((2, 5), bool))
    assert np.isfinite(np.asarray(out)).all()


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_matches_no_remat(remat):
    tokens, positions, kv_mask = _inputs(2, 8, TINY.vocab_size)

    def loss(model):
        return jnp.mean(model(tokens, positions, kv_mask)[0] ** 2)

    plain = Decoder(TINY, rngs=nnx.Rngs(0))
    rematted = Decoder(TINY.replace(remat=remat), rngs=nnx.Rngs(0))
    value, grads = nnx.jit(nnx.value_and_grad(loss))(plain)
    value_r, grads_r = nnx.jit(nnx.value_and_grad(loss))(rematted)
    np.testing.assert_allclose(value_r, value, rtol=1e-6)
    for g, g_r in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_r)):
        np.testing.assert_allclose(g_r, g, atol=1e-6)


@pytest.mark.parametrize("num_layers", [2, 8])
def test_scan_compiles_for_depth(num_layers):
    config = TINY.replace(num_layers=num_layers)
    model = Decoder(config, rngs=nnx.Rngs(0))
    assert model.layers.q.shape[0] == num_layers
    tokens, positions, kv_mask = _inputs(2, 4, config.vocab_size)
    out = _forward(model, tokens, positions, kv_mask)
    assert out.shape == (2, 4, config.vocab_size) and out.dtype == jnp.float32


def test_sharded_forward_equals_unsharded(model):
    tokens, positions, kv_mask = _inputs(8, 8, TINY.vocab_size)
    reference = _forward(model, tokens, positions, kv_mask)
    mesh = make_mesh(data=2, fsdp=2, model=2)
    sharded = shard_model(Decoder(TINY, rngs=nnx.Rngs(0)), mesh)
    assert sharded.layers.gate[...].sharding.spec == jax.P(None, "fsdp", "model")
    with jax.set_mesh(mesh):
        out = _forward(sharded, tokens, positions, kv_mask)
    np.testing.assert_allclose(out, reference, atol=1e-5)
    direct = create_sharded(lambda: Decoder(TINY, rngs=nnx.Rngs(0)), mesh)
    assert direct.embed[...].sharding.spec == jax.P("model", "fsdp")
    np.testing.assert_allclose(direct.embed[...], model.embed[...], atol=1e-7)


def test_untied_head_and_bfloat16_compute():
    config = TINY.replace(tie_embeddings=False, dtype="bfloat16")
    model = Decoder(config, rngs=nnx.Rngs(0))
    tokens, positions, kv_mask = _inputs(2, 4, config.vocab_size)
    out = _forward(model, tokens, positions, kv_mask)
    assert out.dtype == jnp.float32 and model.lm_head.shape == (config.embed_dim, config.vocab_size)
    assert model.init_cache(2, 8).k.dtype == jnp.bfloat16


def test_presets_and_errors():
    assert get_config("smollm2-135m").num_params == 134_515_008
    assert get_config("llama3-8b").num_kv_heads == 8
    # The published parameter counts of Llama 3.1 8B and Llama 3.2 1B (tied embeddings).
    assert get_config("llama3.1-8b").num_params == 8_030_261_248
    assert get_config("llama3.2-1b").num_params == 1_235_814_400
    assert get_config("llama3.2-1b").rope_scaling.kind == "llama3"
    with pytest.raises(KeyError, match="valid presets"):
        get_config("gpt-5")
    with pytest.raises(ValueError, match="remat"):
        TINY.replace(remat="sometimes")
    with pytest.raises(ValueError, match="num_kv_heads"):
        TINY.replace(num_kv_heads=3)
    model = Decoder(TINY, rngs=nnx.Rngs(0))
    tokens, positions, _ = _inputs(1, 4, TINY.vocab_size)
    with pytest.raises(ValueError, match="kv_mask"):
        model(tokens, positions, jnp.ones((1, 5), bool))
