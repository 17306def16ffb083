"""Host-side batching of the sampler: buckets, left padding, prompt validation (no model)."""

import numpy as np
import pytest

from alignment.sampling.batching import bucket_size, check_buckets, left_pad, powers_of_two, token_lists


def test_powers_of_two_and_bucket_choice():
    assert powers_of_two(16, 128) == (16, 32, 64, 128)
    buckets = (2, 6, 8, 16)
    assert [bucket_size(n, buckets, "b") for n in (1, 2, 3, 7, 16)] == [2, 2, 6, 8, 16]
    assert bucket_size(3, buckets, "b", multiple_of=4) == 8
    with pytest.raises(ValueError, match="batch_buckets"):
        bucket_size(17, buckets, "batch_buckets")


@pytest.mark.parametrize("bad", [(), (4, 2), (2, 2), (0, 4), (1.5, 4)])
def test_bad_bucket_tables_raise(bad):
    with pytest.raises(ValueError, match="prompt_buckets"):
        check_buckets(bad, "prompt_buckets")


def test_left_pad_aligns_prompts_on_the_right_and_marks_batch_padding():
    tokens, mask, active = left_pad([[5, 6, 7], [8]], batch=3, length=4, pad_id=0)
    np.testing.assert_array_equal(tokens, [[0, 5, 6, 7], [0, 0, 0, 8], [0, 0, 0, 0]])
    np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1]])
    np.testing.assert_array_equal(active, [True, True, False])


def test_token_lists_from_lists_and_from_a_right_padded_array():
    assert token_lists([[1, 2], np.array([3])]) == [[1, 2], [3]]
    assert token_lists(np.array([[1, 2, 0], [3, 0, 0]]), lengths=[2, 1]) == [[1, 2], [3]]
    with pytest.raises(ValueError, match="empty"):
        token_lists([[1], []])
    with pytest.raises(ValueError, match="lengths"):
        token_lists(np.ones((2, 3)), lengths=[1])
