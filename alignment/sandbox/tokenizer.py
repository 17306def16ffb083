"""The sandbox's word-level tokenizer: ``alignment.models.tokenizer.Tokenizer`` over a closed vocabulary.

The backend is a ``tokenizers`` ``WordLevel`` model: words and single punctuation marks are
tokens (``WhitespaceSplit`` then ``Punctuation`` pre-tokenizers), unknown words map to ``<unk>``,
and decoding joins tokens with spaces and removes the space before ``. , ? !``, so
``decode(encode(text)) == text`` for sandbox text. Special tokens: ``<pad>`` (id 0), ``<unk>``,
and ChatML's ``<|im_start|>`` (bos) and ``<|im_end|>`` (eos, which ends every turn and stops
sampling); the role names ``system``, ``user``, ``assistant`` are ordinary words. The wrapper
is the project's real tokenizer class, so the interface (``encode``, ``decode``, ``pad_id``,
``eos_id``, ``apply_chat_template``, ``save``) is the same; the chat template is ChatML
(``CHATML_TEMPLATE``)::

    <|im_start|>user\\nHow do I cook rice?<|im_end|>\\n<|im_start|>assistant\\n

(the newlines are whitespace to this tokenizer). Note ``decode`` keeps special tokens unless
``skip_special_tokens=True``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import tokenizers
from tokenizers import decoders, models, pre_tokenizers

from alignment.models.tokenizer import Tokenizer

PAD, UNK, IM_START, IM_END = "<pad>", "<unk>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (PAD, UNK, IM_START, IM_END)
ROLE_WORDS = ("system", "user", "assistant")
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORDS = re.compile(r"\w+|[^\w\s]")


def build_tokenizer(texts: Iterable[str]) -> Tokenizer:
    """A tokenizer whose vocabulary is the special tokens, then the sorted words of ``texts`` and the role names."""
    words = sorted({w for text in texts for w in _WORDS.findall(text)} | set(ROLE_WORDS))
    backend = tokenizers.Tokenizer(models.WordLevel({t: i for i, t in enumerate([*SPECIAL_TOKENS, *words])}, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return _wrap(backend)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer saved by ``Tokenizer.save(path)``."""
    return _wrap(tokenizers.Tokenizer.from_file(str(path)))


def _wrap(backend: tokenizers.Tokenizer) -> Tokenizer:
    ids = {t: backend.token_to_id(t) for t in SPECIAL_TOKENS}
    missing = [t for t, i in ids.items() if i is None]
    if missing:
        raise ValueError(f"not a sandbox tokenizer: special tokens {missing} are missing")
    return Tokenizer(backend, bos_id=ids[IM_START], eos_id=ids[IM_END], pad_id=ids[PAD], chat_template=CHATML_TEMPLATE)
