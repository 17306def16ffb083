"""Tokenizer: built from GGUF-style metadata and from tokenizer.json; ChatML; round trips."""

import pytest

from alignment.models.tokenizer import Tokenizer

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BYTES = [chr(c) for c in range(33, 127)] + ["Ġ", "Ċ"]


def _metadata(**extra):
    """A tiny byte-level BPE vocabulary in the GGUF ``tokenizer.ggml.*`` layout."""
    merges = ["h e", "t he", "Ġ the", "l l", "he ll"]
    tokens = SPECIALS + BYTES + [m.replace(" ", "") for m in merges]
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.token_type": [3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS)),
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.chat_template": (
            "{% if loop.first and messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\nBe brief.<|im_end|>\n' }}{% endif %}"
        ),
        **extra,
    }


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_gguf(_metadata())


def test_merges_digits_and_specials(tok):
    vocab = tok.tokenizer.get_vocab()
    assert tok.encode("the") == [vocab["the"]]
    assert tok.encode(" the") == [vocab["Ġthe"]]
    assert tok.encode("123") == [vocab["1"], vocab["2"], vocab["3"]]  # digits split individually
    assert tok.encode("<|im_end|>x") == [2, vocab["x"]]
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 2)


def test_round_trip(tok):
    for text in ["hello there", "x = 12345 + 6", "<|im_start|>user\nhi<|im_end|>\n", "a  b\n\nc"]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode("<|im_end|>ab"), skip_special_tokens=True) == "ab"


def test_chat_template_with_default_system(tok):
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    own_system = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    assert tok.apply_chat_template(own_system, add_generation_prompt=False) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )
    assert tok.encode_chat(own_system)[0] == 1
    with pytest.raises(ValueError, match="content"):
        tok.apply_chat_template([{"role": "user"}])


def test_from_file_round_trip(tok, tmp_path):
    tok.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.from_file(tmp_path / "tokenizer.json", eos_token="<|im_end|>", bos_token="<|im_start|>")
    assert (loaded.bos_id, loaded.eos_id) == (1, 2)
    assert loaded.encode("hello 42 the") == tok.encode("hello 42 the")
    with pytest.raises(KeyError, match="<nope>"):
        Tokenizer.from_file(tmp_path / "tokenizer.json", eos_token="<nope>")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        Tokenizer.from_file(tmp_path / "missing.json", eos_token="<|im_end|>")


def test_unsupported_gguf_tokenizer_is_named():
    with pytest.raises(NotImplementedError, match="llama-bpe"):
        Tokenizer.from_gguf(_metadata(**{"tokenizer.ggml.pre": "llama-bpe"}))
    with pytest.raises(KeyError, match="merges"):
        Tokenizer.from_gguf({k: v for k, v in _metadata().items() if k != "tokenizer.ggml.merges"}, "x.gguf")
