"""Fixed-shape numpy batches of token ids for reward-model training.

Layout: each row is ``prompt + completion`` (see :mod:`alignment.data.tokenization`), padded
with ``pad_id`` to the batch length. Padding is on the **left** by default, so every row's last
token sits at index ``L - 1``, where a decoder with a reward head reads it; the masks tell the
decoder which positions are real (``"right"`` padding is available too). ``*_last`` always gives
the index of each row's last real token and ``*_prompt_last`` that of its last prompt token
(where a general preference model reads the prompt-dependent scale lambda(x)).

Truncation: a sequence longer than ``max_length`` loses tokens from the *start of the prompt*
(the oldest context) and keeps its completion. Only when the completion alone leaves fewer than
``min_context_tokens`` of prompt (the generation prompt's tail) is the completion cut from its
end. Both events are counted in :class:`TruncationStats` (per sequence; a pair has two).

Bucketing: with ``buckets``, a pair goes to the smallest bucket length that holds its longer
sequence, and each bucket fills its own batches, so batches have one of a few fixed shapes
(few recompilations) with little padding. Batches come out when full; at the end, partial
batches are filled up with copies of their own rows marked ``valid = False`` (weight 0 in the
loss), so every batch has exactly ``batch_size`` rows and no row is dropped.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from alignment.data.tokenization import EncodedPair

PADDING = ("left", "right")


class RewardBatch(NamedTuple):
    """A batch of preference pairs: ids and masks [B, L], last-token index, label and valid [B]."""

    chosen_ids: np.ndarray  # int32 [B, L]
    chosen_mask: np.ndarray  # int32 [B, L], 1 for real tokens
    chosen_last: np.ndarray  # int32 [B], index of the last real token
    rejected_ids: np.ndarray
    rejected_mask: np.ndarray
    rejected_last: np.ndarray
    label: np.ndarray  # float32 [B], P(chosen preferred)
    valid: np.ndarray  # bool [B], False for filler rows of a final partial batch
    chosen_prompt_last: np.ndarray  # int32 [B], index of the last prompt token
    rejected_prompt_last: np.ndarray


@dataclasses.dataclass
class TruncationStats:
    """Counts of sequences seen and truncated by a :class:`RewardBatcher`."""

    sequences: int = 0
    context_truncated: int = 0
    response_truncated: int = 0


class RewardBatcher:
    """Turns a stream of :class:`EncodedPair` into fixed-shape :class:`RewardBatch` es.

    Args:
      pad_id: the padding token id.
      batch_size: rows per batch.
      max_length: the longest sequence; the largest bucket.
      buckets: optional shorter bucket lengths (``max_length`` is always a bucket).
      padding: "left" (default) or "right".
      min_context_tokens: prompt tokens kept before the completion itself is cut.

    :attr:`stats` counts truncations over all calls.
    """

    def __init__(
        self,
        pad_id: int,
        batch_size: int,
        max_length: int,
        buckets: Sequence[int] = (),
        padding: str = "left",
        min_context_tokens: int = 8,
    ):
        if padding not in PADDING:
            raise ValueError(f"padding must be one of {PADDING}, got {padding!r}")
        if batch_size < 1 or not 0 <= min_context_tokens < max_length:
            raise ValueError("need batch_size >= 1 and 0 <= min_context_tokens < max_length")
        if any(not min_context_tokens < b <= max_length for b in buckets):
            raise ValueError(f"buckets must lie in ({min_context_tokens}, {max_length}], got {list(buckets)}")
        self.pad_id, self.batch_size, self.max_length = pad_id, batch_size, max_length
        self.buckets = sorted({*buckets, max_length})
        self.padding, self.min_context_tokens = padding, min_context_tokens
        self.stats = TruncationStats()

    def fit(self, prompt: list[int], completion: list[int]) -> tuple[list[int], int]:
        """``prompt + completion`` cut to ``max_length`` by the truncation policy (counted), and
        the number of prompt tokens kept."""
        self.stats.sequences += 1
        if len(prompt) + len(completion) <= self.max_length:
            return prompt + completion, len(prompt)
        keep = max(self.max_length - len(completion), min(len(prompt), self.min_context_tokens))
        self.stats.context_truncated += keep < len(prompt)
        self.stats.response_truncated += self.max_length - keep < len(completion)
        return prompt[len(prompt) - keep :] + completion[: self.max_length - keep], keep

    def collate(self, rows: Sequence[tuple[tuple[list[int], int], tuple[list[int], int], float]], length: int) -> RewardBatch:
        """One batch of ``length`` from (chosen, rejected, label) rows, filled to ``batch_size``;
        each side is ``(ids, prompt tokens kept)`` as :meth:`fit` returns it."""
        valid = np.arange(self.batch_size) < len(rows)
        rows = [rows[i % len(rows)] for i in range(self.batch_size)]
        chosen_ids, chosen_mask, chosen_last, chosen_prompt_last = self._pad([r[0] for r in rows], length)
        rejected_ids, rejected_mask, rejected_last, rejected_prompt_last = self._pad([r[1] for r in rows], length)
        label = np.array([r[2] for r in rows], np.float32)
        return RewardBatch(
            chosen_ids, chosen_mask, chosen_last, rejected_ids, rejected_mask, rejected_last, label, valid,
            chosen_prompt_last, rejected_prompt_last,
        )

    def _pad(self, sequences: list[tuple[list[int], int]], length: int) -> tuple[np.ndarray, ...]:
        """Padded ids, mask, last-token index and last-prompt-token index."""
        ids = np.full((len(sequences), length), self.pad_id, np.int32)
        mask = np.zeros((len(sequences), length), np.int32)
        last = np.empty(len(sequences), np.int32)
        prompt_last = np.empty(len(sequences), np.int32)
        for i, (seq, prompt_len) in enumerate(sequences):
            start = length - len(seq) if self.padding == "left" else 0
            ids[i, start : start + len(seq)] = seq
            mask[i, start : start + len(seq)] = 1
            last[i] = start + len(seq) - 1
            prompt_last[i] = start + max(prompt_len, 1) - 1
        return ids, mask, last, prompt_last

    def __call__(self, pairs: Iterable[EncodedPair]) -> Iterator[RewardBatch]:
        pending: dict[int, list] = {b: [] for b in self.buckets}
        for pair in pairs:
            chosen, rejected = self.fit(pair.prompt, pair.chosen), self.fit(pair.prompt, pair.rejected)
            bucket = self.buckets[bisect.bisect_left(self.buckets, max(len(chosen[0]), len(rejected[0])))]
            pending[bucket].append((chosen, rejected, pair.label))
            if len(pending[bucket]) == self.batch_size:
                yield self.collate(pending[bucket], bucket)
                pending[bucket] = []
        for bucket, rows in pending.items():
            if rows:
                yield self.collate(rows, bucket)
