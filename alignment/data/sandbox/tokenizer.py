"""A word-level tokenizer for the sandbox's closed vocabulary (built with ``tokenizers``).

Words and single punctuation marks are tokens (``WhitespaceSplit`` then ``Punctuation``
pre-tokenizers, ``WordLevel`` model); decoding joins tokens with spaces and removes the space
before ``. , ? !``, so ``decode(encode(text)) == text`` for bank text. Special tokens: ``<pad>``
(id 0), ``<unk>``, ``<bos>``, ``<eos>`` and the role tokens ``<|user|>``, ``<|assistant|>``,
``<|system|>``. The chat template ends every turn with ``<eos>`` (the sampler's stop token)::

    <bos><|user|> How do I cook rice?<eos><|assistant|> Sure, I can help with that.<eos>

``encode`` adds no special tokens of its own: the template holds them.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
ROLE_TOKENS = {"user": "<|user|>", "assistant": "<|assistant|>", "system": "<|system|>"}
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, *ROLE_TOKENS.values())

_WORDS = re.compile(r"\w+|[^\w\s]")


class SandboxTokenizer:
    """The sandbox tokenizer, with the interface of ``alignment.models.tokenizer``.

    Attributes: ``pad_id``, ``bos_id``, ``eos_id``, ``vocab_size``; the wrapped
    ``tokenizers.Tokenizer`` is ``.backend`` (``to_str``/``from_str`` for caching).
    """

    def __init__(self, backend: Tokenizer):
        self.backend = backend
        ids = [backend.token_to_id(t) for t in SPECIAL_TOKENS]
        if None in ids:
            raise ValueError(f"tokenizer lacks special tokens {[t for t, i in zip(SPECIAL_TOKENS, ids) if i is None]}")
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = ids[:4]
        self.vocab_size = backend.get_vocab_size()

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "SandboxTokenizer":
        """A tokenizer whose vocabulary is the special tokens then the sorted words of ``texts``."""
        words = sorted({w for text in texts for w in _WORDS.findall(text)})
        vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *words])}
        backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
        backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
        backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        backend.add_special_tokens(list(SPECIAL_TOKENS))
        return cls(backend)

    @classmethod
    def from_str(cls, json_text: str) -> "SandboxTokenizer":
        return cls(Tokenizer.from_str(json_text))

    def to_str(self) -> str:
        return self.backend.to_str()

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (special-token strings in it become their ids; unknown words ``<unk>``)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """The text of ``ids``; special tokens are dropped unless ``skip_special_tokens=False``."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """``<bos>`` then ``<|role|> content<eos>`` per message, then ``<|assistant|> `` if asked."""
        turns = []
        for m in messages:
            if m["role"] not in ROLE_TOKENS:
                raise ValueError(f"unknown chat role {m['role']!r}; valid roles: {sorted(ROLE_TOKENS)}")
            turns.append(f"{ROLE_TOKENS[m['role']]} {m['content']}{EOS}")
        return BOS + "".join(turns) + (f"{ROLE_TOKENS['assistant']} " if add_generation_prompt else "")
