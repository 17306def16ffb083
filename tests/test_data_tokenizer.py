"""Rendering records with a chat template and encoding them (``byte_tokenizer``: tests/conftest.py)."""

import pytest

from alignment import data


def test_render_splits_prompt_and_completion(byte_tokenizer):
    tokenizer = byte_tokenizer
    record = data.PreferenceRecord(
        (data.Message("system", "S"), data.Message("user", "Q")), chosen="Yes.", rejected="No.", label=0.7
    )
    prompt, completions = data.render(tokenizer, record.messages(), (record.chosen, record.rejected))
    assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    assert completions == ["Yes.<|im_end|>\n", "No.<|im_end|>\n"]
    encoded = data.encode_pair(record, tokenizer)
    assert encoded.prompt == tokenizer.encode(prompt) and encoded.chosen == tokenizer.encode(completions[0])
    assert encoded.rejected[-2:] == [tokenizer.SPECIALS.index("<|im_end|>"), ord("\n") + 3] and encoded.label == 0.7
    assert tokenizer.decode(encoded.prompt + encoded.chosen) == prompt + completions[0]


def test_render_rejects_a_template_without_a_prompt_prefix(byte_tokenizer):
    class Odd(type(byte_tokenizer)):
        def apply_chat_template(self, messages, add_generation_prompt=True):
            text = super().apply_chat_template(messages, add_generation_prompt)
            return text + "#" if add_generation_prompt else text

    with pytest.raises(ValueError, match="does not start with its generation prompt"):
        data.render(Odd(), [{"role": "user", "content": "x"}], ["y"])
