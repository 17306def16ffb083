r"""Preference data: records, file formats, validation, deterministic splits and token batches.

Typical use, on a file of one JSON object per line in any format of ``FORMATS``::

    import json, tempfile
    from pathlib import Path
    from alignment import data, sandbox

    path = Path(tempfile.mkdtemp()) / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "How do I cook rice?", "chosen": "Rinse it, then simmer it.", "rejected": "No."}) + "\n")
    records, report = data.load_preferences(path)      # format detected from the fields: prompt_pairs
    splits = data.split_records(records)               # {"reward_train": [...], "reward_eval": [...], ...}
    tokenizer = sandbox.sandbox_tokenizer()            # any tokenizer with a chat template
    batcher = data.RewardBatcher(tokenizer.pad_id, batch_size=8, max_length=64, buckets=(32,))
    batches = list(batcher(data.encode_pair(r, tokenizer) for r in records))
    print(report.kept, batches[0].chosen_ids.shape)    # 1 (8, 32)

The formats and their fields are listed in ``alignment.data.formats``. TFDS builders and seqio
tasks over the same files are in ``alignment.data.tfds_builder`` and ``alignment.data.seqio_tasks``
(they need the ``[seqio]`` extra and are not imported here). The shared directory of real files
and the reader options they need: ``alignment.data.shared`` (``data_dir``, ``load_shared``).
"""
from alignment.data.batching import RewardBatch, RewardBatcher, TruncationStats
from alignment.data.errors import REASONS, DataError, FieldError, ParseReport
from alignment.data.formats import FORMATS, Format, detect_format, get_format, register_format
from alignment.data.reader import Loaded, PreferenceReader, load_preferences, open_binary
from alignment.data.records import ROLES, Message, PreferenceRecord
from alignment.data.shared import DATA_ENV, READER_OPTIONS, check_file, data_dir, default_data_dir, load_shared
from alignment.data.splits import DEFAULT_SPLITS, assign_split, filter_split, split_records
from alignment.data.tokenization import ChatTokenizer, EncodedPair, encode_pair, render

__all__ = [
    "DATA_ENV",
    "DEFAULT_SPLITS",
    "FORMATS",
    "READER_OPTIONS",
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
    "check_file",
    "data_dir",
    "default_data_dir",
    "detect_format",
    "encode_pair",
    "filter_split",
    "get_format",
    "load_preferences",
    "load_shared",
    "open_binary",
    "register_format",
    "render",
    "split_records",
]
