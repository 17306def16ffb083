"""The FLOP and byte counts of alignment.models.costs against XLA's own count of the programs."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from alignment.models import Decoder, get_config
from alignment.models import costs

# Wide enough that matmuls dominate, as in real models (XLA also counts norms, softmax, RoPE).
CONFIG = get_config("tiny", vocab_size=512, embed_dim=256, mlp_dim=1024, num_heads=4, num_kv_heads=2, head_dim=64, num_layers=2)


def _tokens(batch, length):
    tokens = jnp.zeros((batch, length), jnp.int32)
    return tokens, jnp.broadcast_to(jnp.arange(length), (batch, length)), jnp.ones((batch, length), bool)


@pytest.mark.parametrize("tie", [True, False])
def test_forward_and_train_flops_match_xla_cost_analysis(tie):
    config = CONFIG.replace(tie_embeddings=tie)
    model = Decoder(config, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    batch, length = 2, 64
    inputs = _tokens(batch, length)

    def forward(state, *inputs, unrolled=True):
        model = nnx.merge(graphdef, state)
        return model(*inputs, layer_weights=model.layers.unstacked_weights() if unrolled else None)[0]

    def loss(state, *inputs):
        return jnp.mean(forward(state, *inputs) ** 2)

    useful = costs.forward_flops(config, batch, length)
    for program in (jax.jit(forward).lower(state, *inputs), jax.jit(forward).lower(state, *inputs).compile()):
        assert 0.98 < useful / costs.xla_flops(program) <= 1.0  # the matmuls; XLA also counts norms, softmax, RoPE
    ratio = costs.train_flops(config, batch, length) / costs.xla_flops(jax.jit(jax.grad(loss)).lower(state, *inputs))
    assert 0.95 < ratio <= 1.05, ratio
    # A loop's body counts once: the layer scan shows XLA's count missing one of the two layers.
    scanned = costs.xla_flops(jax.jit(lambda s, *i: forward(s, *i, unrolled=False)).lower(state, *inputs))
    assert scanned < 0.6 * useful


def test_decode_bytes_and_peaks():
    params = CONFIG.num_params * 4
    cache = 2 * CONFIG.num_layers * 3 * 100 * CONFIG.num_kv_heads * CONFIG.head_dim * 4
    assert costs.decode_step_bytes(CONFIG, 3, 100, params) == params + cache
    assert costs.device_peak(jax.devices("cpu")[0]) is None
    assert costs.ACCELERATOR_PEAKS["NVIDIA H200"] == (989e12, 4.8e12)
