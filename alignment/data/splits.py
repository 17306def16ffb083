"""Deterministic splits by a stable hash of the context.

A record's split depends only on its context text (``PreferenceRecord.context_key()``) and a salt,
never on file order or Python's randomised ``hash``: the context is hashed with BLAKE2b, mapped
to a number u in [0, 1), and u is placed on the cumulative fractions of the named splits (in
their given order). All pairs that share a context, in any file and for any property, land in
the same split, so a prompt used to train a reward model never becomes an alignment or
evaluation prompt.

The default: half of each preference set trains the reward model,
the other half provides the prompts for alignment, and a small held-out slice of each half
evaluates (reward-model accuracy, and judged win rates on prompts never used in RL).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping

from alignment.data.records import PreferenceRecord

DEFAULT_SPLITS = {"reward_train": 0.45, "reward_eval": 0.05, "policy": 0.45, "eval": 0.05}


def _check(fractions: Mapping[str, float]) -> None:
    if not fractions or any(not f > 0 for f in fractions.values()):
        raise ValueError(f"split fractions must be positive, got {dict(fractions)}")
    if not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-9):
        raise ValueError(f"split fractions must sum to 1, got {sum(fractions.values())}")


def unit_hash(key: str, salt: str = "") -> float:
    """A stable, uniform number in [0, 1) for ``key`` (64 bits of BLAKE2b of salt and key)."""
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_split(key: str, fractions: Mapping[str, float] = DEFAULT_SPLITS, salt: str = "") -> str:
    """The name of the split that ``key`` falls into."""
    _check(fractions)
    u, total = unit_hash(key, salt), 0.0
    for name, fraction in fractions.items():
        total += fraction
        if u < total:
            return name
    return name  # u is within rounding of 1.0: the last split


def filter_split(
    records: Iterable[PreferenceRecord], name: str, fractions: Mapping[str, float] = DEFAULT_SPLITS, salt: str = ""
) -> Iterator[PreferenceRecord]:
    """The records of one split, streaming."""
    if name not in fractions:
        raise KeyError(f"unknown split {name!r}; valid splits: {list(fractions)}")
    return (r for r in records if assign_split(r.context_key(), fractions, salt) == name)


def split_records(
    records: Iterable[PreferenceRecord], fractions: Mapping[str, float] = DEFAULT_SPLITS, salt: str = ""
) -> dict[str, list[PreferenceRecord]]:
    """All records grouped by split (every split name present, possibly empty), order kept."""
    groups: dict[str, list[PreferenceRecord]] = {name: [] for name in fractions}
    for record in records:
        groups[assign_split(record.context_key(), fractions, salt)].append(record)
    return groups
