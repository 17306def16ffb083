"""Loaders: Hugging Face safetensors parity with transformers, GGUF row order, clear errors."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from alignment.models.loaders.gguf import config_from_gguf, open_gguf, unpermute_rows
from alignment.models.loaders.hf import config_from_hf, load_hf


def _llama_cpp_permute(w, num_heads):
    """llama.cpp's conversion of HF q/k rows (the inverse of ``unpermute_rows``)."""
    rows, cols = w.shape
    return w.reshape(num_heads, 2, rows // num_heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def test_unpermute_inverts_llama_cpp_permutation():
    w = np.random.default_rng(0).normal(size=(3 * 8, 5))
    np.testing.assert_array_equal(unpermute_rows(_llama_cpp_permute(w, 3), 3), w)


@pytest.mark.parametrize("tied", [False, True])
def test_safetensors_matches_transformers(tmp_path, tied):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=5000.0, rms_norm_eps=1e-5, tie_word_embeddings=tied,
    )
    reference_model = transformers.LlamaForCausalLM(hf_config).eval()
    reference_model.save_pretrained(tmp_path)
    model, config = load_hf(tmp_path)
    assert (config.rope_theta, config.tie_embeddings, config.num_kv_heads) == (5000.0, tied, 2)
    tokens = np.random.default_rng(0).integers(0, 128, size=(2, 11))
    with torch.no_grad():
        expected = reference_model(torch.tensor(tokens)).logits.numpy()
    positions = jnp.broadcast_to(jnp.arange(11), (2, 11))
    logits, _ = model(jnp.asarray(tokens, jnp.int32), positions, jnp.ones((2, 11), bool))
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_hf_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf(tmp_path)
    base = {"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 8}
    (tmp_path / "config.json").write_text(json.dumps(base))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_hf(tmp_path)
    with pytest.raises(NotImplementedError, match="llama3"):
        config_from_hf({**base, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "cfg.json")
    with pytest.raises(ValueError, match="gpt2"):
        config_from_hf({**base, "model_type": "gpt2"}, "cfg.json")
    with pytest.raises(KeyError, match="intermediate_size"):
        config_from_hf({k: v for k, v in base.items() if k != "intermediate_size"}, "cfg.json")


def test_gguf_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.gguf"):
        open_gguf(tmp_path / "nothing.gguf")
    with pytest.raises(ValueError, match="architecture"):
        config_from_gguf({"general.architecture": "gemma3"}, "model.gguf")
    with pytest.raises(KeyError, match="llama.block_count"):
        config_from_gguf({"general.architecture": "llama", "llama.attention.head_count": 2,
                          "llama.embedding_length": 8, "llama.vocab_size": 8}, "model.gguf")
