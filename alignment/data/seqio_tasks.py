r"""seqio tasks over the TFDS preference builder (needs the ``[seqio]`` extra).

The task reads a prepared :class:`~alignment.data.tfds_builder.PreferencePairs` builder, renders
each record with the tokenizer's chat template (the same :func:`~alignment.data.tokenization.render`
as the plain path) and tokenizes ``prompt``, ``chosen`` and ``rejected`` with a seqio
:class:`TokenizerVocabulary` around the same tokenizer. Its examples are exactly the plain
path's :class:`~alignment.data.tokenization.EncodedPair` s (see :func:`encoded_pairs`), so the
same :class:`~alignment.data.batching.RewardBatcher` makes the same batches. With a builder
prepared as in :mod:`alignment.data.tfds_builder`::

    import json, tempfile
    import seqio
    import tensorflow_datasets as tfds
    from alignment.data import RewardBatcher
    from alignment.data.seqio_tasks import encoded_pairs, preference_task
    from alignment.data.tfds_builder import PreferencePairs, PreferencePairsConfig
    from alignment.sandbox import sandbox_tokenizer

    manual_dir = tempfile.mkdtemp()
    with open(f"{manual_dir}/pairs.jsonl", "w") as f:
        for i in range(100):
            f.write(json.dumps({"prompt": f"Question {i}?", "chosen": "A full answer.", "rejected": "No."}) + "\n")
    builder = PreferencePairs(config=PreferencePairsConfig(name="my_pairs", filename="pairs.jsonl"), data_dir=tempfile.mkdtemp())
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))

    tokenizer = sandbox_tokenizer()                    # any tokenizer with a chat template
    task = preference_task("my_pairs", builder, tokenizer)
    seqio.TaskRegistry.add_provider("my_pairs", task)  # optional: find it by name
    dataset = task.get_dataset(sequence_length=None, split="reward_train", shuffle=False)
    batches = list(RewardBatcher(tokenizer.pad_id, 8, 64, buckets=(32,))(encoded_pairs(dataset)))
    print(batches[0].chosen_ids.shape)                 # (8, 32)
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from alignment.data.tokenization import ChatTokenizer, EncodedPair, render

TEXT_FEATURES = ("prompt", "chosen", "rejected")


def _text(value) -> str:
    """A string from a scalar that ``tf.numpy_function`` passes as bytes or a 0-d array of bytes."""
    return np.asarray(value).item().decode("utf-8")


class TokenizerVocabulary(seqio.Vocabulary):
    """A seqio vocabulary around a :class:`ChatTokenizer` that also has ``decode(ids) -> str`` and
    ``vocab_size`` (as ``alignment.models.tokenizer.Tokenizer`` has).

    No EOS is appended by seqio (``eos_id`` is None): the chat template writes end-of-turn text.
    """

    def __init__(self, tokenizer: ChatTokenizer):
        super().__init__(extra_ids=0)
        self.tokenizer = tokenizer

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_id

    @property
    def eos_id(self) -> None:
        return None

    @property
    def unk_id(self) -> None:
        return None

    @property
    def _base_vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def _encode(self, s: str) -> list[int]:
        return self.tokenizer.encode(s)

    def _decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids])

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        ids = tf.numpy_function(lambda b: np.array(self._encode(_text(b)), np.int32), [s], tf.int32)
        return tf.ensure_shape(ids, [None])

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        return tf.numpy_function(lambda i: self._decode(i).encode("utf-8"), [ids], tf.string)

    def __eq__(self, other) -> bool:
        return isinstance(other, TokenizerVocabulary) and other.tokenizer is self.tokenizer


@seqio.map_over_dataset
def render_chat(example: dict, tokenizer: ChatTokenizer) -> dict:
    """Replaces the context and responses by the prompt text and the two completion texts."""

    def render_texts(roles, contents, chosen, rejected):
        messages = [{"role": _text(r), "content": _text(c)} for r, c in zip(roles, contents)]
        prompt, completions = render(tokenizer, messages, (_text(chosen), _text(rejected)))
        return [t.encode("utf-8") for t in (prompt, *completions)]

    context = example["context"]
    texts = tf.numpy_function(
        render_texts, [context["role"], context["content"], example["chosen"], example["rejected"]], [tf.string] * 3
    )
    rendered = {name: tf.ensure_shape(text, []) for name, text in zip(TEXT_FEATURES, texts)}
    return {**rendered, "label": example["label"]}


def _read_builder(builder: tfds.core.DatasetBuilder, split: str, shuffle_files: bool, seed: int | None = None):
    return builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=tfds.ReadConfig(shuffle_seed=seed))


def preference_task(name: str, builder: tfds.core.DatasetBuilder, tokenizer: ChatTokenizer) -> seqio.Task:
    """A seqio task of tokenized preference pairs from a prepared builder (one split per hash split)."""
    vocabulary = TokenizerVocabulary(tokenizer)
    return seqio.Task(
        name,
        source=seqio.FunctionDataSource(functools.partial(_read_builder, builder), splits=list(builder.info.splits)),
        preprocessors=[
            functools.partial(render_chat, tokenizer=tokenizer),
            functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False),
        ],
        output_features={name: seqio.Feature(vocabulary, add_eos=False) for name in TEXT_FEATURES},
    )


def encoded_pairs(dataset: tf.data.Dataset) -> Iterator[EncodedPair]:
    """The task's examples as :class:`EncodedPair` s, for :class:`~alignment.data.batching.RewardBatcher`."""
    for example in dataset.as_numpy_iterator():
        yield EncodedPair(*(example[name].tolist() for name in TEXT_FEATURES), float(example["label"]))
