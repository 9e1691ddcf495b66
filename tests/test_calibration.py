"""The calibrated min (calibration.mode): offsets and scales by hand, the head that binds, off = today's numbers,
evaluation reads what training recorded, and a switch that is off changes no parameter hash."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from sharedrep_utils import calibration, rewards
from sharedrep_utils import reward_models as rm_module
from sharedrep_utils.config import ConfigError, load_config
from sharedrep_utils.reward_models import GroupHeads, save_heads
from sharedrep_utils.runs import policy_dir, preferences_dir, responses_dir, rm_dir, sft_dir, stage_output
from sharedrep_utils.stages import grpo
from sharedrep_utils.stages import reward_models as rm_stage

# two heads at different levels: head 0 reads feature 0 (around 2), head 1 reads feature 1 (around 12)
FEATURES = {"low": [1.0, 10.0], "high": [3.0, 14.0], "new": [2.5, 11.0], "other": [0.0, 13.0]}
# by hand: on the reference set {low, high} head 0 has mean 2, std 1; head 1 has mean 12, std 2 (ddof 0)
OFFSETS, STDS = [2.0, 12.0], [1.0, 2.0]


class LookupExtractor:
    """A frozen "backbone" whose features are a lookup table by the scored text (the response alone)."""

    calls = 0

    def __init__(self, rm=None, device="cpu"):
        self.dim = 2

    def __call__(self, texts):
        LookupExtractor.calls += 1
        return torch.tensor([FEATURES[t] for t in texts])

    def cache_key(self, texts):
        return "lookup-" + str(len(texts))


def identity_heads(groups: list[str]) -> GroupHeads:
    heads = GroupHeads("maxmin", 2, len(groups))
    with torch.no_grad():
        heads.net.weight.copy_(torch.eye(2))
    return heads


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run directory with a reference set (one prompt, responses "low" and "high") and hand-set MaxMin heads."""
    monkeypatch.setattr(rm_module, "FeatureExtractor", LookupExtractor)
    cfg = load_config("smoke", {"run_dir": str(tmp_path / "run"), "reward_model.text_format": "{response}"})
    groups = list(cfg.gold.groups)
    responses_dir(cfg.run_path).mkdir(parents=True)
    pd.DataFrame({"prompt": ["\n\nHuman: q1"], "response_0": ["low"], "response_1": ["high"]}).to_parquet(
        responses_dir(cfg.run_path) / "responses.parquet"
    )
    save_heads(identity_heads(groups), rm_dir(cfg.run_path, 0, 0.1) / "maxmin", groups, cfg.reward_model, {})
    return cfg


def test_offsets_and_scales_are_the_heads_mean_and_std_on_the_reference_set():
    reference = np.array([FEATURES["low"], FEATURES["high"]])
    centred = calibration.fit_offsets(reference, ["a", "b"], "center")
    assert centred["offset"] == {"a": 2.0, "b": 12.0}
    assert centred["scale"] == {"a": 1.0, "b": 1.0} and centred["reference_std"] == {"a": 1.0, "b": 2.0}
    scaled = calibration.fit_offsets(reference, ["a", "b"], "standardize")
    assert scaled["scale"] == {"a": 1.0, "b": 2.0} and scaled["n_reference"] == 2
    # the new response (2.5, 11): raw, head a binds (2.5 < 11); centred, head b (-1 < 0.5); standardized, b
    new = np.array([FEATURES["new"]])
    assert calibration.binding_shares(new, ["a", "b"]) == {"a": 1.0, "b": 0.0}
    np.testing.assert_allclose(calibration.apply(new, centred, ["a", "b"]), [[0.5, -1.0]])
    np.testing.assert_allclose(calibration.apply(new, scaled, ["a", "b"]), [[0.5, -0.5]])
    assert calibration.binding_shares(calibration.apply(new, scaled, ["a", "b"]), ["a", "b"]) == {"a": 0.0, "b": 1.0}
    with pytest.raises(ValueError, match="constant on the reference set"):
        calibration.fit_offsets(np.array([[1.0, 5.0], [2.0, 5.0]]), ["a", "b"], "standardize")


def test_binding_shares_count_the_argmin_per_row():
    values = np.array([[0.0, 1.0, 2.0], [5.0, 1.0, 2.0], [3.0, 4.0, -1.0], [1.0, 1.0, 1.0]])
    # rows bind a, b, c, and a (an exact tie goes to the first group)
    assert calibration.binding_shares(values, ["a", "b", "c"]) == {"a": 0.5, "b": 0.25, "c": 0.25}


@pytest.mark.parametrize(
    "mode, expected, binds",
    [("none", 2.5, 0), ("center", -1.0, 1), ("standardize", -0.5, 1)],  # min of (2.5, 11) on each scale, by hand
)
def test_the_grpo_reward_takes_the_calibrated_min_and_evaluation_reads_the_recorded_offsets(run, mode, expected, binds):
    cfg = load_config("smoke", {"run_dir": str(run.run_path), "reward_model.text_format": "{response}"})
    cfg.calibration.mode = mode
    groups = list(cfg.gold.groups)
    trained = rewards.reward_function(cfg, 0, 0.1, "maxmin", "cpu", fit_calibration=True)
    value = rewards.training_reward(trained, ["\n\nHuman: q2"], ["new"])
    np.testing.assert_allclose(value, [expected])
    scaled = trained.scaled_rewards(["\n\nHuman: q2"], ["new"])
    assert int(np.argmin(scaled[0])) == binds
    if mode == "none":
        assert trained.calibration is None
        assert not (policy_dir(cfg.run_path, 0, 0.1, "maxmin") / calibration.FILE).exists()
        return
    fitted = trained.calibration
    assert fitted["offset"] == dict(zip(groups, OFFSETS)) and fitted["reference_std"] == dict(zip(groups, STDS))
    assert fitted["binds_raw"] == {groups[0]: 1.0, groups[1]: 0.0}  # raw, head 0 is lower on both references
    # both references sit at +-1 std of each head: centred, head 1 binds for "low" (-2 < -1), head 0 for "high"
    expected_binds = {groups[0]: 0.5, groups[1]: 0.5} if mode == "center" else {groups[0]: 1.0, groups[1]: 0.0}
    assert fitted["binds_calibrated"] == expected_binds
    # evaluation: the offsets the GRPO run wrote with the policy, not refitted
    out = policy_dir(cfg.run_path, 0, 0.1, "maxmin")
    out.mkdir(parents=True)
    calibration.write(fitted, out)
    (responses_dir(cfg.run_path) / "responses.parquet").unlink()  # a refit would need it
    evaluated = rewards.reward_function(cfg, 0, 0.1, "maxmin", "cpu")
    assert evaluated.calibration == json.loads(json.dumps(fitted))
    np.testing.assert_allclose(rewards.training_reward(evaluated, ["\n\nHuman: q2"], ["new"]), [expected])


def test_evaluation_without_a_recorded_calibration_says_so(run):
    cfg = load_config("smoke", {"run_dir": str(run.run_path), "calibration.mode": "center"})
    with pytest.raises(ConfigError, match="trained without calibration"):
        rewards.reward_function(cfg, 0, 0.1, "maxmin", "cpu")
    out = policy_dir(cfg.run_path, 0, 0.1, "maxmin")
    out.mkdir(parents=True)
    calibration.write({"mode": "standardize"}, out)
    with pytest.raises(ConfigError, match="fitted with calibration.mode 'standardize', not 'center'"):
        rewards.reward_function(cfg, 0, 0.1, "maxmin", "cpu")


def test_the_reference_set_reads_the_feature_cache_once(run):
    reward = rm_module.MinOverGroupsReward(rm_dir(run.run_path, 0, 0.1) / "maxmin", run.reward_model)
    LookupExtractor.calls = 0
    first = rewards.reference_calibration(reward, run.run_path, "center")
    second = rewards.reference_calibration(reward, run.run_path, "center")
    assert first == second and LookupExtractor.calls == 1  # the second fit is a cache hit, no backbone pass


def test_a_switch_that_is_off_changes_no_parameter_hash(tmp_path):
    cfg = load_config("smoke", {"run_dir": str(tmp_path)})
    for directory, name in ((sft_dir(cfg.run_path), "sft"), (preferences_dir(cfg.run_path, 0, 0.1), "preferences")):
        with stage_output(directory, name, {"fake": name}):
            pass
    with stage_output(rm_dir(cfg.run_path, 0, 0.1), "reward_models", {"fake": "rm"}):
        pass
    off_grpo, off_rm = grpo.params(cfg, 0, 0.1, "maxmin"), rm_stage.params(cfg, 0, 0.1)
    off_gold = grpo.params(cfg, 0, None, "gold")
    # the keys the GRPO stage hashed before the setting existed
    assert set(off_grpo) == {"sft", "rm", "grpo", "n_grpo_prompts", "method", "seed", "proportion"}
    cfg.calibration.mode = "center"
    assert rm_stage.params(cfg, 0, 0.1) == off_rm  # the reward models never depend on it
    assert grpo.params(cfg, 0, None, "gold") == off_gold  # the gold min is never calibrated
    assert grpo.params(cfg, 0, 0.1, "maxmin") == {**off_grpo, "calibration": {"mode": "center"}}


@pytest.mark.parametrize("profile", ["smoke", "small", "paper", "paper-upstream"])
def test_every_shipped_profile_takes_the_raw_min(profile):
    assert load_config(profile).calibration.mode == "none"


def test_an_unknown_mode_is_refused_before_any_work():
    with pytest.raises(ConfigError, match="calibration.mode 'centre' is not one of none, center, standardize"):
        load_config("smoke", {"calibration.mode": "centre"})


def test_reference_binding_shows_what_each_mode_would_change(run):
    table = rewards.reference_binding(run, 0, 0.1, "maxmin")
    groups = list(run.gold.groups)
    assert table["group"].tolist() == groups
    assert table["reference_mean"].tolist() == OFFSETS and table["reference_std"].tolist() == STDS
    assert table["binds_raw"].tolist() == [1.0, 0.0]  # head 0 sits ~10 below head 1 on both responses
    assert table["binds_centred"].tolist() == [0.5, 0.5]  # "low": (-1, -2) -> head 1; "high": (1, 2) -> head 0
    assert table["binds_standardized"].tolist() == [1.0, 0.0]  # (-1, -1) and (1, 1): exact ties go to the first


def test_off_written_in_yaml_gets_a_hint():
    with pytest.raises(ConfigError, match="YAML reads off and on as booleans"):
        load_config("smoke", {"calibration.mode": False})  # what --set calibration.mode=off gives
