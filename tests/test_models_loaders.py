"""Loaders: Hugging Face safetensors parity with transformers, GGUF row order, clear errors."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
import tokenizers

from alignment.models.config import RopeScaling
from alignment.models.layers import rope_frequencies
from alignment.models.loaders.convert import LAYER_TENSORS
from alignment.models.loaders.gguf import config_from_gguf, hf_tensors_from_gguf, open_gguf, unpermute_rows
from alignment.models.loaders.hf import config_from_hf, load_hf


def _llama_cpp_permute(w, num_heads):
    """llama.cpp's conversion of HF q/k rows (the inverse of ``unpermute_rows``)."""
    rows, cols = w.shape
    return w.reshape(num_heads, 2, rows // num_heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def test_unpermute_inverts_llama_cpp_permutation():
    w = np.random.default_rng(0).normal(size=(3 * 8, 5))
    np.testing.assert_array_equal(unpermute_rows(_llama_cpp_permute(w, 3), 3), w)


LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}


def _reference(transformers, tied=False, rope_scaling=None):
    hf_config = transformers.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=5000.0, rms_norm_eps=1e-5, tie_word_embeddings=tied,
        rope_scaling=rope_scaling,
    )
    return transformers.LlamaForCausalLM(hf_config).eval()


@pytest.mark.parametrize(
    "tied, rope_scaling",
    [(False, None), (True, None), (False, {"rope_type": "linear", "factor": 4.0}), (True, LLAMA3_ROPE)],
    ids=["untied", "tied", "linear-rope", "llama3-rope"],
)
def test_safetensors_matches_transformers(tmp_path, tied, rope_scaling):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    reference_model = _reference(transformers, tied, rope_scaling)
    reference_model.save_pretrained(tmp_path)
    model, tokenizer, config = load_hf(tmp_path)
    assert tokenizer is None  # the directory has no tokenizer.json
    assert (config.rope_theta, config.tie_embeddings, config.num_kv_heads) == (5000.0, tied, 2)
    assert (config.rope_scaling and config.rope_scaling.kind) == (rope_scaling and rope_scaling["rope_type"])
    tokens = np.random.default_rng(0).integers(0, 128, size=(2, 40))
    with torch.no_grad():
        expected = reference_model(torch.tensor(tokens)).logits.numpy()
    positions = jnp.broadcast_to(jnp.arange(40), (2, 40))
    logits, _ = model(jnp.asarray(tokens, jnp.int32), positions, jnp.ones((2, 40), bool))
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    if rope_scaling:  # the scaling matters at these positions: plain RoPE gives other logits
        plain = load_hf(tmp_path, rope_scaling=None).model
        unscaled = plain(jnp.asarray(tokens, jnp.int32), positions, jnp.ones((2, 40), bool))[0]
        assert np.abs(np.asarray(unscaled) - expected).max() > 1e-3


def test_llama3_rope_frequencies_keep_high_divide_low_and_blend_between():
    scaling = RopeScaling("llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_length=64)
    plain = rope_frequencies(16, 5000.0)
    scaled = rope_frequencies(16, 5000.0, scaling)
    cycles = 64 * plain / (2 * np.pi)  # periods of each frequency within the original context
    high, low = cycles > 4, cycles < 1
    assert high.any() and low.any() and (~high & ~low).any()
    np.testing.assert_allclose(scaled[high], plain[high], rtol=1e-6)
    np.testing.assert_allclose(scaled[low], plain[low] / 8, rtol=1e-6)
    middle = ~high & ~low
    assert (scaled[middle] < plain[middle]).all() and (scaled[middle] > plain[middle] / 8).all()
    np.testing.assert_allclose(rope_frequencies(16, 5000.0, RopeScaling("linear", factor=4.0)), plain / 4, rtol=1e-6)


def test_hf_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf(tmp_path)
    base = {"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 8}
    (tmp_path / "config.json").write_text(json.dumps(base))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_hf(tmp_path)
    with pytest.raises(NotImplementedError, match="rope_type='yarn'.*'llama3'"):
        config_from_hf({**base, "rope_scaling": {"rope_type": "yarn", "factor": 8.0}}, "cfg.json")
    with pytest.raises(KeyError, match="cfg.json: rope_type 'llama3': missing field 'low_freq_factor'"):
        config_from_hf({**base, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "cfg.json")
    with pytest.raises(ValueError, match="RopeScaling: kind='ntk'"):
        RopeScaling("ntk", factor=2.0)
    with pytest.raises(ValueError, match="gpt2"):
        config_from_hf({**base, "model_type": "gpt2"}, "cfg.json")
    with pytest.raises(KeyError, match="intermediate_size"):
        config_from_hf({k: v for k, v in base.items() if k != "intermediate_size"}, "cfg.json")


def test_load_hf_returns_the_directory_tokenizer_with_its_chat_template(tmp_path):
    safetensors = pytest.importorskip("safetensors.numpy")
    config = {"model_type": "llama", "vocab_size": 4, "hidden_size": 4, "num_hidden_layers": 1,
              "num_attention_heads": 1, "intermediate_size": 4, "head_dim": 4, "tie_word_embeddings": True}
    (tmp_path / "config.json").write_text(json.dumps(config))
    names = ["model.embed_tokens.weight", "model.norm.weight", *(f"model.layers.0.{s}" for s in LAYER_TENSORS.values())]
    tensors = {name: np.ones((4,) if "norm" in name else (4, 4), np.float32) for name in names}
    safetensors.save_file(tensors, str(tmp_path / "model.safetensors"))
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<s>": 0, "</s>": 1, "hi": 2, "user": 3}, unk_token="hi"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    backend.save(str(tmp_path / "tokenizer.json"))
    template = "{{ bos_token }}{% for m in messages %}{{ m['role'] }} {{ m['content'] }}{{ eos_token }}{% endfor %}"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>", "chat_template": template}))
    model, tokenizer, config = load_hf(tmp_path)
    assert config.num_layers == 1 and model.config == config
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=False) == "<s>user hi</s>"
    assert (tokenizer.bos_id, tokenizer.eos_id) == (0, 1)


def test_gguf_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.gguf"):
        open_gguf(tmp_path / "nothing.gguf")
    with pytest.raises(ValueError, match="architecture"):
        config_from_gguf({"general.architecture": "gemma3"}, "model.gguf")
    with pytest.raises(KeyError, match="llama.block_count"):
        config_from_gguf({"general.architecture": "llama", "llama.attention.head_count": 2,
                          "llama.embedding_length": 8, "llama.vocab_size": 8}, "model.gguf")


def test_gguf_rope_scaling_linear_is_read_and_the_others_raise(tmp_path):
    metadata = {"general.architecture": "llama", "llama.attention.head_count": 2, "llama.embedding_length": 8,
                "llama.vocab_size": 8, "llama.block_count": 1, "llama.feed_forward_length": 8,
                "llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.context_length": 64}
    assert config_from_gguf(metadata, "model.gguf").rope_scaling is None
    linear = {**metadata, "llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 4.0}
    assert config_from_gguf(linear, "model.gguf").rope_scaling == RopeScaling("linear", factor=4.0)
    with pytest.raises(NotImplementedError, match="model.gguf: llama.rope.scaling.type='yarn'"):
        config_from_gguf({**metadata, "llama.rope.scaling.type": "yarn"}, "model.gguf")
    # A Llama 3.1 file carries its scaling as a tensor of per-frequency factors: refused, not ignored.
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "llama31.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("rope_freqs.weight", np.ones(2, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(NotImplementedError, match="rope_freqs"):
        hf_tensors_from_gguf(open_gguf(path), config_from_gguf(metadata, str(path)))
