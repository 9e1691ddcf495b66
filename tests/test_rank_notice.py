"""K >= U is said, not hidden: methods.rank_notice and the results caption."""

from __future__ import annotations

from sharedrep_utils.config import load_config
from sharedrep_utils.methods import rank_notice
from sharedrep_utils.stages import results

FOUR_GROUPS = {
    "minority": {"neutral": 1.0},
    "a": {"upbeat": 1.0},
    "b": {"harmless": 1.0},
    "c": {"upbeat": 0.5, "harmless": 0.5},
}


def test_every_k_at_least_u_says_the_rank_constrains_nothing():
    line = rank_notice(load_config("paper"))  # U = 2 groups, K in {2, 16}
    assert line.startswith("K >= U: with U = 2 groups, SharedRep's rank K = 2, 16 constrains nothing")
    assert "can only come from optimisation" in line and "\n" not in line and "< U" not in line


def test_some_k_below_u_are_named():
    cfg = load_config("smoke", {"gold.groups": FOUR_GROUPS, "reward_model.ks": [16, 2, 4]})
    line = rank_notice(cfg)
    assert "U = 4 groups" in line and "K = 4, 16 constrains nothing" in line
    assert line.endswith("only K = 2 (< U) constrains the heads.")


def test_no_notice_when_every_k_is_below_u_or_there_is_no_sharedrep():
    assert rank_notice(load_config("smoke", {"gold.groups": FOUR_GROUPS, "reward_model.ks": [2, 3]})) is None
    assert rank_notice(load_config("smoke", {"reward_model.methods": ["maxmin", "uniform"]})) is None


def test_the_results_caption_says_k_at_least_u(tmp_path):
    cfg = load_config("smoke", {"run_dir": str(tmp_path), "reward_model.ks": [2, 16]})
    by_seed = results.pd.DataFrame({"n": [30]})
    assert rank_notice(cfg) in results.caption(cfg, by_seed)
    cfg = load_config("smoke", {"run_dir": str(tmp_path), "gold.groups": FOUR_GROUPS, "reward_model.ks": [2]})
    assert "K >= U" not in results.caption(cfg, by_seed)
