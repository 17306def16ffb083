"""Rendering records with a chat template and encoding them; defines the tiny test tokenizer.

``ByteChatTokenizer`` is a stand-in for ``alignment.models.tokenizer``: UTF-8 bytes as ids, three
special tokens and a ChatML template. Other data tests import it from here.
"""

import re

import pytest

from alignment import data

SPECIALS = ("<pad>", "<|im_start|>", "<|im_end|>")


class ByteChatTokenizer:
    """Byte-level tokenizer with ChatML special tokens; ``encode`` adds no special tokens."""

    pad_id = 0
    vocab_size = len(SPECIALS) + 256
    _split = re.compile("(" + "|".join(map(re.escape, SPECIALS)) + ")")

    def encode(self, text):
        ids = []
        for piece in self._split.split(text):
            if piece in SPECIALS:
                ids.append(SPECIALS.index(piece))
            else:
                ids.extend(b + len(SPECIALS) for b in piece.encode("utf-8"))
        return ids

    def decode(self, ids):
        pieces = [SPECIALS[i].encode() if i < len(SPECIALS) else bytes([i - len(SPECIALS)]) for i in ids]
        return b"".join(pieces).decode("utf-8", errors="replace")

    def apply_chat_template(self, messages, add_generation_prompt=True):
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


TOKENIZER = ByteChatTokenizer()


def test_render_splits_prompt_and_completion():
    record = data.PreferenceRecord(
        (data.Message("system", "S"), data.Message("user", "Q")), chosen="Yes.", rejected="No.", label=0.7
    )
    prompt, completions = data.render(TOKENIZER, record.messages(), (record.chosen, record.rejected))
    assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    assert completions == ["Yes.<|im_end|>\n", "No.<|im_end|>\n"]
    encoded = data.encode_pair(record, TOKENIZER)
    assert encoded.prompt == TOKENIZER.encode(prompt) and encoded.chosen == TOKENIZER.encode(completions[0])
    assert encoded.rejected[-2:] == [SPECIALS.index("<|im_end|>"), ord("\n") + 3] and encoded.label == 0.7
    assert TOKENIZER.decode(encoded.prompt + encoded.chosen) == prompt + completions[0]


def test_render_rejects_a_template_without_a_prompt_prefix():
    class Odd(ByteChatTokenizer):
        def apply_chat_template(self, messages, add_generation_prompt=True):
            text = super().apply_chat_template(messages, add_generation_prompt)
            return text + "#" if add_generation_prompt else text

    with pytest.raises(ValueError, match="does not start with its generation prompt"):
        data.render(Odd(), [{"role": "user", "content": "x"}], ["y"])
