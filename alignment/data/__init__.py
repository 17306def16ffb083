"""Preference data: records, file formats, validation, deterministic splits and token batches.

Typical use::

    from alignment import data
    reader = data.PreferenceReader("harmless-base-test.jsonl.gz", "hh", on_error="skip")
    records = data.filter_split(reader, "reward_train")
    batcher = data.RewardBatcher(tokenizer.pad_id, batch_size=8, max_length=512, buckets=(128, 256))
    for batch in batcher(data.encode_pair(r, tokenizer) for r in records): ...

seqio tasks and TFDS builders over the same files live in ``alignment.data.tfds`` (needs the
``[seqio]`` extra; not imported here).
"""

from alignment.data.batching import RewardBatch, RewardBatcher, TruncationStats
from alignment.data.errors import REASONS, DataError, FieldError, ParseReport
from alignment.data.formats import FORMATS, Format, detect_format, get_format, register_format
from alignment.data.reader import Loaded, PreferenceReader, load_preferences, open_binary
from alignment.data.records import ROLES, Message, PreferenceRecord
from alignment.data.splits import DEFAULT_SPLITS, assign_split, filter_split, split_records
from alignment.data.tokenization import ChatTokenizer, EncodedPair, encode_pair, render

__all__ = [
    "DEFAULT_SPLITS",
    "FORMATS",
    "REASONS",
    "ROLES",
    "ChatTokenizer",
    "DataError",
    "EncodedPair",
    "FieldError",
    "Format",
    "Loaded",
    "Message",
    "ParseReport",
    "PreferenceReader",
    "PreferenceRecord",
    "RewardBatch",
    "RewardBatcher",
    "TruncationStats",
    "assign_split",
    "detect_format",
    "encode_pair",
    "filter_split",
    "get_format",
    "load_preferences",
    "open_binary",
    "register_format",
    "render",
    "split_records",
]
