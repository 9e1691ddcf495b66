"""completion_stats: what the policies write (length, empty, repeated trigrams), worked out by hand."""

import pandas as pd
import pytest

from sharedrep_utils.stats import completion_stats, repeats_trigram


@pytest.mark.parametrize(
    "text, repeats",
    [
        ("I think you want to be a good to be a good to be a good", True),  # "to be a" three times
        ("a b c a b c", False),  # twice only
        ("A b C. a B c! a b c", True),  # case and punctuation do not hide it
        ("hello there", False),  # no trigram at all
        ("", False),
    ],
)
def test_a_completion_repeats_when_one_word_trigram_occurs_three_times(text, repeats):
    assert repeats_trigram(text) is repeats


def test_per_policy_length_empty_and_repeat_shares():
    evals = {
        (42, 0.1, "sharedrep-k2"): pd.DataFrame(
            {"completion": ["to be a to be a to be a", "hello there friend", "", "one two"]}
        ),
        (None, None, "sft"): pd.DataFrame({"completion": ["yes", "no thanks"]}),
    }
    frame = completion_stats(evals).set_index("method")
    shared = frame.loc["sharedrep"]
    assert (shared["k"], shared["seed"], shared["proportion"], shared["n"]) == (2, 42, 0.1, 4)
    assert shared["mean_words"] == pytest.approx((9 + 3 + 0 + 2) / 4)
    assert shared["empty"] == pytest.approx(1 / 4) and shared["repeats_trigram"] == pytest.approx(1 / 4)
    sft = frame.loc["sft"]
    assert pd.isna(sft["k"]) and sft["n"] == 2 and sft["mean_words"] == pytest.approx(1.5)
    assert sft["empty"] == 0 and sft["repeats_trigram"] == 0
