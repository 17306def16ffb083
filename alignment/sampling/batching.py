"""Host-side batching for the sampler: prompt validation, shape buckets and left padding.

Shapes are rounded up to *buckets* so that a run compiles one sampling program per
(batch bucket, prompt-length bucket), not one per batch. Prompts are left-padded: every
prompt ends at the same column, so the whole batch shares one KV-cache write index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def powers_of_two(lowest: int, highest: int) -> tuple[int, ...]:
    """``(lowest, 2 lowest, 4 lowest, ...)`` up to and including ``highest`` (both powers of two)."""
    sizes = []
    size = lowest
    while size <= highest:
        sizes.append(size)
        size *= 2
    return tuple(sizes)


def check_buckets(buckets: Sequence[int], name: str) -> tuple[int, ...]:
    """Validates a bucket table: positive, strictly increasing ints. Returns it as a tuple."""
    buckets = tuple(buckets)
    if not buckets or any(not isinstance(b, int) or b < 1 for b in buckets) or list(buckets) != sorted(set(buckets)):
        raise ValueError(f"{name} must be a non-empty, strictly increasing tuple of positive ints; got {buckets}")
    return buckets


def bucket_size(n: int, buckets: Sequence[int], name: str, multiple_of: int = 1) -> int:
    """The smallest bucket ``>= n`` that is a multiple of ``multiple_of``.

    Raises ``ValueError`` naming the table ``name`` when no bucket is large enough.
    """
    for size in buckets:
        if size >= n and size % multiple_of == 0:
            return size
    divisible = f" and divisible by {multiple_of}" if multiple_of > 1 else ""
    raise ValueError(f"no bucket in {name}={tuple(buckets)} is >= {n}{divisible}; add a larger bucket")


def token_lists(prompts, lengths: Sequence[int] | None = None) -> list[list[int]]:
    """Prompts as python lists of token ids.

    ``prompts`` is a sequence of token-id sequences, or a 2-D integer array whose row ``b`` holds
    its prompt in the first ``lengths[b]`` columns (right padding; ``lengths`` is then required).
    Every prompt must hold at least one token.
    """
    if lengths is not None:
        array = np.asarray(prompts)
        lengths = np.asarray(lengths)
        if array.ndim != 2 or lengths.shape != (array.shape[0],):
            raise ValueError(f"with lengths, prompts must be a [B, T] array and lengths [B]; got prompts {array.shape}, lengths {lengths.shape}")
        if (lengths < 1).any() or (lengths > array.shape[1]).any():
            raise ValueError(f"lengths must lie in [1, {array.shape[1]}] (the prompt array's width); got {lengths.tolist()}")
        rows = [row[:n].tolist() for row, n in zip(array, lengths)]
    else:
        rows = [np.asarray(p).reshape(-1).tolist() for p in prompts]
    empty = [b for b, row in enumerate(rows) if not row]
    if not rows or empty:
        raise ValueError(f"need at least one prompt and no empty prompts; empty rows: {empty}")
    return rows


def left_pad(rows: Sequence[Sequence[int]], batch: int, length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left-pads ``rows`` into ``[batch, length]`` int32 tokens and a bool mask of real tokens.

    Rows past ``len(rows)`` (batch padding) hold one ``pad_id`` token marked valid so that their
    attention is well defined; the returned ``active`` ``[batch]`` bool is ``False`` for them.
    """
    tokens = np.full((batch, length), pad_id, np.int32)
    mask = np.zeros((batch, length), bool)
    for b, row in enumerate(rows):
        tokens[b, length - len(row):] = row
        mask[b, length - len(row):] = True
    mask[len(rows):, -1] = True
    active = np.arange(batch) < len(rows)
    return tokens, mask, active
