"""Prompts a stage takes: never silently fewer than asked (one line, and the manifest's count), and
the evaluation prompts, the same for every seed or, with evaluation.prompts_per_seed, drawn per seed.
05_evaluate runs here with its model, generation and gold scorer stubbed (no weights, no network)."""

import numpy as np
import pytest

from sharedrep_utils import hh_data
from sharedrep_utils.config import ConfigError, load_config
from sharedrep_utils.hh_data import Example, HHData, take_counted
from sharedrep_utils.runs import eval_file, policy_dir, policy_id, read_manifest, sft_dir, stage_output
from sharedrep_utils.stages import evaluate
from sharedrep_utils.stats import paired_rewards

HELD_OUT = [Example(f"id{i:02d}", f"\n\nHuman: question {i}?", "c", "r") for i in range(12)]


def test_fewer_examples_than_asked_is_said_in_one_line_and_recorded(capsys):
    chosen, record = take_counted(HELD_OUT, 2000, "data.n_eval_prompts", "held-out prompts")
    assert chosen == HELD_OUT
    line = "SHORTFALL: data.n_eval_prompts asks for 2000 held-out prompts, but the data holds only 12; using 12."
    assert capsys.readouterr().out.strip() == line
    assert (record["asked"], record["available"], record["used"]) == (2000, 12, 12)
    assert record["setting"] == "data.n_eval_prompts" and record["shortfall"] in line


@pytest.mark.parametrize("n", [5, 12, 0])  # 0 = all: never a shortfall
def test_enough_examples_print_nothing(capsys, n):
    chosen, record = take_counted(HELD_OUT, n, "data.n_preference_prompts", "train prompts")
    assert chosen == (HELD_OUT[:n] if n else HELD_OUT)
    assert record["used"] == len(chosen) and record["shortfall"] is None
    assert capsys.readouterr().out == ""


def test_a_quiet_process_records_but_does_not_print(capsys):
    _, record = take_counted(HELD_OUT, 99, "data.n_grpo_prompts", "GRPO train prompts", echo=False)
    assert record["shortfall"] and capsys.readouterr().out == ""


def test_a_seeded_draw_repeats_and_differs_by_seed():
    first, record = take_counted(HELD_OUT, 5, "data.n_eval_prompts", "held-out prompts", seed=42)
    again, _ = take_counted(HELD_OUT, 5, "data.n_eval_prompts", "held-out prompts", seed=42)
    other, _ = take_counted(HELD_OUT, 5, "data.n_eval_prompts", "held-out prompts", seed=123)
    assert first == again and first != other and record["draw_seed"] == 42
    assert {e.prompt_id for e in first} <= {e.prompt_id for e in HELD_OUT} and len({e.prompt_id for e in first}) == 5


def test_the_draw_takes_the_first_n_of_a_seeded_permutation(monkeypatch):
    """With numpy's permutation planned (11, 3, 7, 0, 5, ...), the five drawn are those examples, in that order."""
    seeds = []

    class Planned:
        def permutation(self, n):
            assert n == 12
            return np.array([11, 3, 7, 0, 5, 1, 2, 4, 6, 8, 9, 10])

    monkeypatch.setattr(np.random, "default_rng", lambda seed: seeds.append(seed) or Planned())
    drawn, _ = take_counted(HELD_OUT, 5, "data.n_eval_prompts", "held-out prompts", seed=7)
    assert [e.prompt_id for e in drawn] == ["id11", "id03", "id07", "id00", "id05"] and seeds == [7]


def test_the_seeded_draw_is_uniform_over_the_prompts():
    """Over 600 seeds each of the 12 prompts is among the 5 drawn 600 · 5/12 = 250 times, give or take
    √(600 · 5/12 · 7/12) ≈ 12: every count within 5 SD of 250."""
    counts = dict.fromkeys((e.prompt_id for e in HELD_OUT), 0)
    for seed in range(600):
        for example in take_counted(HELD_OUT, 5, "data.n_eval_prompts", "held-out prompts", seed=seed)[0]:
            counts[example.prompt_id] += 1
    assert all(abs(c - 250) <= 5 * 12.1 for c in counts.values()), counts


def length_reward(prompts, completions, **kwargs):
    """A training reward as GRPOTrainer calls it (conversational inputs): the completion's length."""
    assert prompts[0][0]["role"] == "user" and completions[0][0]["role"] == "assistant"
    return [float(len(c[0]["content"])) for c in completions]


@pytest.fixture
def stubbed(tmp_path, monkeypatch):
    """05_evaluate with the data, the policy, generation and the gold scorer replaced by stand-ins."""
    (tmp_path / "hh.jsonl").write_text("")  # config checks the HH directory holds data files; load_hh is stubbed

    def config(**extra):
        return load_config("smoke", {"run_dir": str(tmp_path / "run"), "data.hh_dir": str(tmp_path), **extra})

    class Scorer:
        def __init__(self, gold, device, **kwargs):
            pass

        def traits(self, prompts, responses):
            return {"helpful": np.array([float(len(r)) for r in responses])}

        def groups(self, traits):
            return {"minority": traits["helpful"], "majority": 0.5 * traits["helpful"]}

    monkeypatch.setattr(evaluate, "load_hh", lambda data, hh_dir: HHData(train=[], test=HELD_OUT, source="stub"))
    # the model directory's parent (sft/, <seed>/gold/policy/, ...) goes into the replies: policies differ
    monkeypatch.setattr(evaluate, "load_policy", lambda path, policy, device: (path.parent.name, "tokenizer"))
    monkeypatch.setattr(evaluate, "pick_device", lambda cfg: "cpu")
    monkeypatch.setattr(
        evaluate, "generate", lambda model, tok, prompts, **kw: [[f"{model} reply to {p[-3:]}"] for p in prompts]
    )
    monkeypatch.setattr(evaluate, "GoldScorer", Scorer)
    monkeypatch.setattr(evaluate, "reward_function", lambda cfg, seed, prop, method, device, tok, **kw: length_reward)

    def finished_policy(cfg, seed, method):
        target = sft_dir(cfg.run_path) if method == "sft" else policy_dir(cfg.run_path, seed, None, method)
        with stage_output(target, method, {"stub": method}):
            pass

    return config, finished_policy


def test_evaluate_says_it_has_fewer_prompts_and_records_both_counts(stubbed, capsys):
    config, finished_policy = stubbed
    cfg = config(**{"data.n_eval_prompts": 200})
    finished_policy(cfg, 1, "gold")
    table = evaluate.main(cfg, 1, None, "gold")
    assert len(table) == 12
    out = capsys.readouterr().out
    assert "SHORTFALL: data.n_eval_prompts asks for 200 held-out prompts, but the data holds only 12; using 12." in out
    manifest = read_manifest(eval_file(cfg.run_path, policy_id(1, None, "gold")))
    assert manifest["n_prompts"] == 12
    assert {k: manifest["prompts"][k] for k in ("asked", "available", "used")} == {
        "asked": 200,
        "available": 12,
        "used": 12,
    }
    assert manifest["params"]["evaluation"]["prompts_per_seed"] is False  # the switch is part of the stage's params


def test_the_same_prompts_for_every_seed_by_default_and_per_seed_with_the_switch(stubbed, capsys):
    config, finished_policy = stubbed
    fixed = config(**{"data.n_eval_prompts": 5})
    per_seed = config(**{"data.n_eval_prompts": 5, "evaluation.prompts_per_seed": True})
    for seed in (1, 2):
        finished_policy(fixed, seed, "gold")
    finished_policy(fixed, None, "sft")

    def ids(cfg, seed, method):
        return set(evaluate.main(cfg, seed, None, method)["prompt_id"])

    first_five = {e.prompt_id for e in HELD_OUT[:5]}
    assert ids(fixed, 1, "gold") == ids(fixed, 2, "gold") == ids(fixed, None, "sft") == first_five
    # the switch changes the stage's parameters, so each policy is evaluated again, on its seed's draw
    drawn = {seed: ids(per_seed, seed, "gold") for seed in (1, 2)}
    # each seed's draw is take_counted's with that seed (its draw is checked by hand above)
    for seed in (1, 2):
        expected = take_counted(HELD_OUT, 5, "data.n_eval_prompts", "held-out prompts", seed=seed, echo=False)[0]
        assert drawn[seed] == {e.prompt_id for e in expected}
    assert drawn[1] != drawn[2] and all(len(d) == 5 for d in drawn.values())
    assert ids(per_seed, None, "sft") == first_five  # SFT has no seed: the fixed prompts
    manifest = read_manifest(eval_file(per_seed.run_path, policy_id(2, None, "gold")))
    assert manifest["prompts"]["draw_seed"] == 2 and manifest["params"]["evaluation"]["prompts_per_seed"] is True
    assert "SHORTFALL" not in capsys.readouterr().out


def test_a_policy_and_the_sft_completions_are_scored_with_the_policys_training_reward(stubbed, capsys):
    config, finished_policy = stubbed
    cfg = config(**{"data.n_eval_prompts": 5})
    finished_policy(cfg, 1, "gold")
    finished_policy(cfg, None, "sft")
    alone = evaluate.main(cfg, 1, None, "gold")  # before the SFT policy is evaluated: nothing to compare with
    assert alone["sft_training_reward"].isna().all() and "run 05_evaluate for sft first" in capsys.readouterr().out
    sft = evaluate.main(cfg, None, None, "sft")
    assert "training_reward" not in sft  # the SFT policy was not trained on a reward
    # the SFT evaluation is part of the policy's parameters: the policy is scored again, now with the comparison
    table = evaluate.main(cfg, 1, None, "gold").set_index("prompt_id")
    sft = sft.set_index("prompt_id").loc[table.index]
    assert (table["completion"] != sft["completion"]).all()
    assert table["training_reward"].tolist() == [float(len(c)) for c in table["completion"]]
    assert table["sft_training_reward"].tolist() == [float(len(c)) for c in sft["completion"]]
    gains = paired_rewards(table.reset_index(), sft.reset_index(), ["minority", "majority"])
    gain = gains["training"]["policy"] - gains["training"]["sft"]
    assert (gain == len("policy") - len("sft")).all()  # replies start with the model directory's name


def test_the_removed_tie_tolerance_setting_says_what_replaced_it():
    with pytest.raises(ConfigError, match="'results.tie_tolerance' was removed: a tie is now an identical completion"):
        load_config("smoke", {"results.tie_tolerance": 1e-6})


def test_hh_data_take_is_unchanged():
    assert hh_data.take(HELD_OUT, 3) == HELD_OUT[:3] and hh_data.take(HELD_OUT, 0) == HELD_OUT
