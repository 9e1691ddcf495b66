"""Did RL climb? The paired gain over the SFT policy (results/reward_gain.csv, notebooks 04-06), the Wilson
interval of a reward model's accuracy, and the CPU profiles' tone traits."""

import numpy as np
import pandas as pd
import pytest

from sharedrep_utils import report
from sharedrep_utils.config import TraitConfig
from sharedrep_utils.gold import SCORERS
from sharedrep_utils.stats import REWARD_GAIN_COLUMNS, Options, accuracy_interval, paired_rewards, reward_gain

GROUPS = ["minority", "majority"]
IDS = [f"p{i:02d}" for i in range(40)]


def table(minority, majority, training=None, sft_training=None, ids=IDS) -> pd.DataFrame:
    out = pd.DataFrame({"prompt_id": ids, "group_minority": minority, "group_majority": majority})
    if training is not None:
        out["training_reward"], out["sft_training_reward"] = training, sft_training
    return out


def evals():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, len(IDS))
    sft = table(base, base + 1)
    climbed = table(base + 0.5, base + 2, training=base + 3, sft_training=base)  # gold min: +0.5 everywhere
    flat = table(base + rng.normal(0, 0.3, len(IDS)), base + 1, training=base, sft_training=base)
    gold = table(base + 0.2, base + 1.2)
    return {(None, None, "sft"): sft, (1, 0.1, "maxmin"): climbed, (1, 0.1, "uniform"): flat, (1, None, "gold"): gold}


def test_reward_gain_has_one_row_per_policy_and_reward_with_the_paired_mean_and_an_interval():
    gain = reward_gain(evals(), GROUPS, Options(n_bootstrap=500))
    assert list(gain.columns) == REWARD_GAIN_COLUMNS
    rows = {(r.method, r.reward): r for r in gain.itertuples()}
    assert set(rows) == {(m, r) for m in ("maxmin", "uniform") for r in ("training", "gold_min")} | {
        ("gold", "gold_min")
    }
    climbed = rows[("maxmin", "training")]
    assert climbed.mean_gain_vs_sft == pytest.approx(3.0) and climbed.n == len(IDS)
    assert climbed.ci_low == pytest.approx(3.0) and climbed.ci_high == pytest.approx(3.0)  # the same gain everywhere
    assert rows[("maxmin", "gold_min")].mean_gain_vs_sft == pytest.approx(0.5)
    assert rows[("gold", "gold_min")].mean_gain_vs_sft == pytest.approx(0.2)
    assert rows[("gold", "gold_min")].seed == 1 and pd.isna(rows[("gold", "gold_min")].proportion)
    flat = rows[("uniform", "training")]
    assert flat.mean_gain_vs_sft == 0 and flat.ci_low == flat.ci_high == 0
    noisy = rows[("uniform", "gold_min")]
    assert noisy.ci_low < noisy.mean_gain_vs_sft < noisy.ci_high and noisy.ci_low < 0 < noisy.ci_high
    assert climbed.mean_sft == pytest.approx(np.mean(evals()[(1, 0.1, "maxmin")]["sft_training_reward"]))


def test_prompts_are_paired_by_id_whatever_their_order_and_unmatched_ones_are_left_out():
    sft = table(np.arange(40.0), np.arange(40.0) + 10)
    shuffled = table(np.arange(40.0)[::-1] + 1, np.arange(40.0)[::-1] + 11, ids=IDS[::-1])
    pairs = paired_rewards(shuffled, sft, GROUPS)
    assert (pairs["gold_min"]["policy"] - pairs["gold_min"]["sft"] == 1).all()
    fewer = sft.iloc[:30]
    assert len(paired_rewards(shuffled, fewer, GROUPS)["gold_min"]) == 30
    assert paired_rewards(shuffled, None, GROUPS) == {}  # no SFT evaluation, no gain
    nan_sft = table(np.zeros(40), np.zeros(40), training=np.ones(40), sft_training=[np.nan] * 40)
    assert len(paired_rewards(nan_sft, sft, GROUPS)["training"]) == 0


def test_the_before_after_table_and_the_overview_say_whether_rl_climbed():
    e = evals()
    before_after = report.reward_before_after(e[(1, 0.1, "maxmin")], e[(None, None, "sft")], GROUPS)
    assert list(before_after.index) == ["training", "gold_min"]
    row = before_after.loc["training"]
    assert row["mean_policy"] - row["mean_sft"] == pytest.approx(row["mean_gain_vs_sft"]) == pytest.approx(3.0)
    overview = report.gain_overview(reward_gain(e, GROUPS, Options(n_bootstrap=200)))
    climbed = dict(zip(zip(overview["policy"], overview["reward"]), overview["climbed"]))
    assert climbed[("MaxMin", "training")] and climbed[("MaxMin", "gold_min")]
    assert not climbed[("Uniform", "training")] and not climbed[("Uniform", "gold_min")]


def test_reward_climb_compares_the_first_and_last_quarter_of_the_logged_rewards():
    history = [{"step": s, "reward": float(s)} for s in range(1, 9)] + [{"train_runtime": 1.0, "step": 8}]
    row = report.reward_climb(history).iloc[0]
    assert (row["first quarter"], row["last quarter"], row["logged steps"]) == (1.5, 7.5, 8)
    assert row["change"] == 6.0
    assert report.reward_climb([{"step": 1, "loss": 0.1}]).empty


def test_accuracy_interval_is_wilsons_and_widens_with_fewer_pairs():
    low, high = accuracy_interval(0.6, 10)
    assert (round(low, 4), round(high, 4)) == (0.3127, 0.8318)  # Wilson score interval for 6/10
    narrow = accuracy_interval(0.6, 1000)
    assert low < narrow[0] < 0.6 < narrow[1] < high
    assert all(np.isnan(accuracy_interval(0.6, 0)))


@pytest.mark.parametrize(
    ("reply", "upbeat"),
    [
        ("Great, thank you so much, I love it!", "positive"),
        ("The river is long.", "zero"),
        ("This is awful.", "negative"),
    ],
)
def test_neutral_tone_is_one_minus_the_size_of_the_sentiment(reply, upbeat):
    sentiment = SCORERS["sentiment"](TraitConfig(kind="sentiment"), "cpu")(["\n\nHuman: hi"], [reply])[0]
    neutral = SCORERS["neutral_tone"](TraitConfig(kind="neutral_tone"), "cpu")(["\n\nHuman: hi"], [reply])[0]
    assert {"positive": sentiment > 0.5, "zero": sentiment == 0, "negative": sentiment < -0.3}[upbeat]
    assert neutral == pytest.approx(1 - abs(sentiment)) and 0 <= neutral <= 1


def test_the_gold_training_reward_reuses_the_loaded_gold_models_and_is_the_min_of_the_group_scores():
    from sharedrep_utils import rewards
    from sharedrep_utils.config import load_config
    from sharedrep_utils.gold import GoldScorer

    cfg = load_config("smoke")
    scorer = GoldScorer(cfg.gold)
    reward = rewards.reward_function(cfg, 1, None, "gold", "cpu", gold_scorer=scorer)
    assert reward.scorer is scorer  # evaluation loads the gold models once
    prompts, replies = ["\n\nHuman: hi", "\n\nHuman: bye"], ["Great, thanks a lot!", "The bus leaves at noon."]
    # the smoke profile's gold traits from the two libraries themselves, weighted by hand (smoke.yaml):
    # minority = 0.7 (1 - |VADER compound|) + 0.3 (1 - P(offensive)), majority = 0.7 compound + 0.3 (1 - P(offensive))
    from profanity_check import predict_prob
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    compound = np.array([SentimentIntensityAnalyzer().polarity_scores(r)["compound"] for r in replies])
    harmless = 1.0 - np.asarray(predict_prob(replies), dtype=float)
    minority, majority = 0.7 * (1 - np.abs(compound)) + 0.3 * harmless, 0.7 * compound + 0.3 * harmless
    assert minority[0] < majority[0] and majority[1] < minority[1]  # the groups disagree on these two replies
    np.testing.assert_allclose(rewards.training_reward(reward, prompts, replies), np.minimum(minority, majority))


def test_embedding_relevance_is_the_cosine_of_the_last_question_and_the_reply(tmp_path):
    """No shipped profile uses it now; it stays a kind a profile can choose, on any sentence encoder."""
    import tiny_backbones

    encoder = tiny_backbones.build("bert", tmp_path / "bert")
    trait = TraitConfig(kind="embedding_relevance", model=str(encoder), max_length=32, batch_size=2)
    score = SCORERS["embedding_relevance"](trait, "cpu")
    prompts = ["\n\nHuman: hi\n\nAssistant: hello\n\nHuman: boil an egg?", "\n\nHuman: capital of France?"]
    values = score(prompts, ["boil an egg?", "short answers and long answers"])
    assert values[0] == pytest.approx(1.0, abs=1e-5)  # the reply is the last question itself
    # by hand: the encoder's token states averaged (one text, no padding), normalised, and their dot product
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(encoder), AutoModel.from_pretrained(encoder).eval()

    def embed(text: str) -> torch.Tensor:
        with torch.no_grad():
            states = model(**tokenizer([text], return_tensors="pt", truncation=True, max_length=32)).last_hidden_state
        vector = states[0].mean(dim=0)
        return vector / vector.norm()

    expected = float(embed("capital of France?") @ embed("short answers and long answers"))
    assert abs(expected) < 0.99 and values[1] == pytest.approx(expected, abs=1e-5)


def test_notebook_05_compares_with_the_sft_evaluation_or_says_why_it_cannot(tmp_path):
    from sharedrep_utils.config import load_config
    from sharedrep_utils.runs import eval_file

    cfg = load_config("smoke", {"run_dir": str(tmp_path), "results.n_bootstrap": 100})
    e = evals()
    policy = e[(1, 0.1, "maxmin")]
    assert "SFT policy" in report.policy_before_after(cfg, e[(None, None, "sft")], "sft")
    assert "method = 'sft' first" in report.policy_before_after(cfg, policy, "maxmin")
    eval_file(cfg.run_path, "sft").parent.mkdir(parents=True)
    e[(None, None, "sft")].to_parquet(eval_file(cfg.run_path, "sft"))
    table = report.policy_before_after(cfg, policy, "maxmin")
    assert table.loc["training", "mean_gain_vs_sft"] == pytest.approx(3.0)
    assert table.loc["gold_min", "mean_gain_vs_sft"] == pytest.approx(0.5)
