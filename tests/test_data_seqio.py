"""The TFDS builder and seqio task give the same records and token batches as the plain path.

Needs the ``[seqio]`` extra (tensorflow, seqio, tensorflow-datasets); skipped without it.
"""

import json

import numpy as np
import pytest

pytest.importorskip("seqio")
tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")


from alignment import data
from alignment.data import seqio_tasks, tfds_builder
from alignment.data.formats import prompt_pairs


def synthetic_records(n=300):
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        turns = [data.Message("user", f"question {i} " + "why? " * int(rng.integers(0, 40)))]
        if i % 3 == 0:
            turns = [
                data.Message("system", "Answer in French."),
                data.Message("user", "bonjour"),
                data.Message("assistant", "salut é ü ✓"),
                *turns,
            ]
        chosen, rejected = f"answer {i} " * int(rng.integers(1, 20)), f"no {i}"
        records.append(data.PreferenceRecord(tuple(turns), chosen, rejected, float(rng.uniform(0.5, 1.0)), "synthetic"))
    return records


def prepare(config, manual_dir, data_dir):
    builder = tfds_builder.PreferencePairs(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def plain_batches(records, tokenizer):
    return list(
        data.RewardBatcher(tokenizer.pad_id, 8, 256, buckets=(64, 128))(data.encode_pair(r, tokenizer) for r in records)
    )


def assert_same_batches(ours, theirs):
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        for field, x, y in zip(data.RewardBatch._fields, a, b):
            assert x.dtype == y.dtype and x.shape == y.shape, field
            np.testing.assert_array_equal(x, y, err_msg=field)


def check_builder_matches_plain(builder, records, tokenizer):
    """Every split's records, and its seqio token batches, equal the plain path's."""
    expected = data.split_records(records)
    task = seqio_tasks.preference_task("preferences_test", builder, tokenizer)
    for split, plain in expected.items():
        rebuilt = [tfds_builder.record_from_example(ex) for ex in builder.as_dataset(split=split).as_numpy_iterator()]
        assert rebuilt == plain, split
        dataset = task.get_dataset(sequence_length=None, split=split, shuffle=False)
        assert_same_batches(
            plain_batches(plain, tokenizer),
            list(data.RewardBatcher(tokenizer.pad_id, 8, 256, buckets=(64, 128))(seqio_tasks.encoded_pairs(dataset))),
        )


def test_synthetic_file_through_tfds_and_seqio(tmp_path, byte_tokenizer):
    path = tmp_path / "manual" / "pairs.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(prompt_pairs.to_json(r)) + "\n" for r in synthetic_records()))
    config = tfds_builder.PreferencePairsConfig(name="synthetic", filename="pairs.jsonl", property="synthetic")
    builder = prepare(config, path.parent, tmp_path / "tfds")
    records = data.load_preferences(path, property="synthetic").records
    assert sum(builder.info.splits[s].num_examples for s in data.DEFAULT_SPLITS) == len(records) == 300
    check_builder_matches_plain(builder, records, byte_tokenizer)


def test_vocabulary_round_trip(byte_tokenizer):
    tokenizer = byte_tokenizer
    vocabulary = seqio_tasks.TokenizerVocabulary(tokenizer)
    text = "<|im_start|>user\nçà va?<|im_end|>\n"
    ids = vocabulary.encode_tf(tf.constant(text))
    assert ids.numpy().tolist() == vocabulary.encode(text) == tokenizer.encode(text)
    assert vocabulary.decode(ids.numpy().tolist()) == vocabulary.decode_tf(ids).numpy().decode() == text
    assert vocabulary.pad_id == tokenizer.pad_id and vocabulary.vocab_size == tokenizer.vocab_size


def test_shared_hh_through_tfds_and_seqio(tmp_path, shared_data, byte_tokenizer):
    builder = prepare("hh_harmless_base_test", shared_data, tmp_path / "tfds")
    records = data.load_preferences(
        shared_data / "hh-rlhf/harmless-base-test.jsonl.gz", "hh", allow_empty_responses=True
    ).records
    assert sum(split.num_examples for split in builder.info.splits.values()) == len(records) == 2312
    check_builder_matches_plain(builder, records, byte_tokenizer)
