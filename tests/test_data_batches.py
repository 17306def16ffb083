"""Fixed-shape reward-model batches: shapes, padding, masks, last-token index, truncation, buckets."""

import numpy as np
import pytest

from alignment import data


def pair(prompt_len, chosen_len, rejected_len, label=1.0):
    """An encoded pair with recognisable ids: prompt 100.., chosen 200.., rejected 300.."""
    return data.EncodedPair(
        list(range(100, 100 + prompt_len)),
        list(range(200, 200 + chosen_len)),
        list(range(300, 300 + rejected_len)),
        label,
    )


def test_left_padding_masks_and_last_index():
    batcher = data.RewardBatcher(pad_id=0, batch_size=2, max_length=8, min_context_tokens=2)
    (batch,) = batcher([pair(2, 3, 1, 0.9), pair(1, 1, 2)])
    assert batch.chosen_ids.shape == batch.rejected_mask.shape == (2, 8) and batch.chosen_ids.dtype == np.int32
    np.testing.assert_array_equal(batch.chosen_ids[0], [0, 0, 0, 100, 101, 200, 201, 202])
    np.testing.assert_array_equal(batch.chosen_mask[0], [0, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(batch.rejected_ids[1], [0, 0, 0, 0, 0, 100, 300, 301])
    np.testing.assert_array_equal(batch.chosen_last, [7, 7])
    np.testing.assert_array_equal(batch.chosen_prompt_last, [4, 6])
    np.testing.assert_array_equal(batch.rejected_prompt_last, [6, 5])
    np.testing.assert_allclose(batch.label, [0.9, 1.0])
    assert batch.valid.all() and batcher.stats == data.TruncationStats(4, 0, 0)


def test_right_padding():
    (batch,) = data.RewardBatcher(pad_id=5, batch_size=2, max_length=6, padding="right", min_context_tokens=1)(
        [pair(2, 1, 3), pair(1, 2, 1)]
    )
    np.testing.assert_array_equal(batch.rejected_ids[0], [100, 101, 300, 301, 302, 5])
    np.testing.assert_array_equal(batch.rejected_mask[0], [1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(batch.chosen_last, [2, 2])
    np.testing.assert_array_equal(batch.rejected_last, [4, 1])
    np.testing.assert_array_equal(batch.rejected_prompt_last, [1, 0])


def test_truncation_keeps_the_response_and_counts():
    batcher = data.RewardBatcher(pad_id=0, batch_size=1, max_length=6, min_context_tokens=2)
    (batch,) = batcher([pair(5, 3, 5)])
    np.testing.assert_array_equal(batch.chosen_ids[0], [102, 103, 104, 200, 201, 202])  # context cut on the left
    np.testing.assert_array_equal(batch.rejected_ids[0], [103, 104, 300, 301, 302, 303])  # response cut on the right
    np.testing.assert_array_equal(batch.chosen_prompt_last, [2])
    np.testing.assert_array_equal(batch.rejected_prompt_last, [1])
    assert batch.chosen_mask.all() and batcher.stats == data.TruncationStats(2, 2, 1)


def test_buckets_and_filler_rows():
    batcher = data.RewardBatcher(pad_id=0, batch_size=2, max_length=16, buckets=(4, 8), min_context_tokens=1)
    pairs = [pair(1, 2, 1), pair(4, 3, 3), pair(1, 1, 1), pair(10, 2, 2), pair(1, 1, 2)]
    batches = list(batcher(pairs))
    assert [(b.chosen_ids.shape, b.valid.tolist()) for b in batches] == [
        ((2, 4), [True, True]),
        ((2, 4), [True, False]),
        ((2, 8), [True, False]),
        ((2, 16), [True, False]),
    ]
    filler = batches[1]
    np.testing.assert_array_equal(filler.chosen_ids[1], filler.chosen_ids[0])  # a real row, weight 0
    assert sum(int(b.valid.sum()) for b in batches) == len(pairs)


@pytest.mark.parametrize(
    "kwargs", [{"padding": "middle"}, {"batch_size": 0}, {"min_context_tokens": 8}, {"buckets": (32,)}]
)
def test_invalid_batcher_options(kwargs):
    with pytest.raises(ValueError):
        data.RewardBatcher(**{"pad_id": 0, "batch_size": 2, "max_length": 8, **kwargs})


def test_real_pairs_to_batches(shared_data, byte_tokenizer):
    tokenizer = byte_tokenizer
    reader = data.PreferenceReader(shared_data / "hh-rlhf/harmless-base-test.jsonl.gz", "hh", on_error="skip")
    records = list(data.filter_split(reader, "eval"))
    batcher = data.RewardBatcher(tokenizer.pad_id, batch_size=16, max_length=512, buckets=(128, 256))
    batches = list(batcher(data.encode_pair(r, tokenizer) for r in records))
    assert sum(int(b.valid.sum()) for b in batches) == len(records) > 50
    assert {b.chosen_ids.shape for b in batches} <= {(16, 128), (16, 256), (16, 512)}
    assert 0 < batcher.stats.context_truncated < batcher.stats.sequences == 2 * len(records)
    end = tokenizer.encode("<|im_end|>\n")
    cut_responses = 0
    for b in batches:
        for ids, mask in ((b.chosen_ids, b.chosen_mask), (b.rejected_ids, b.rejected_mask)):
            cut_responses += int((ids[b.valid, -2:] != end).any(1).sum())
            assert ((ids == tokenizer.pad_id) == (mask == 0)).all()  # the byte tokenizer never emits pad
    assert cut_responses == batcher.stats.response_truncated
