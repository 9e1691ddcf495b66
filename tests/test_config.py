"""Profiles, dotted overrides and validation: bad values fail early with a sentence naming them."""

import pytest

from sharedrep_utils.config import (
    HH_DIR_ENV,
    METHODS,
    Config,
    ConfigError,
    available_profiles,
    load_config,
    parse_override,
)


@pytest.fixture(autouse=True)
def no_hh_dir_env(monkeypatch):
    monkeypatch.delenv(HH_DIR_ENV, raising=False)


def test_the_profiles_are_shipped_and_load():
    assert {"smoke", "small", "paper", "paper-upstream"} <= set(available_profiles())
    for name in ("smoke", "small", "paper", "paper-upstream"):
        cfg = load_config(name)
        assert isinstance(cfg, Config)
        assert cfg.profile == name
        assert set(cfg.reward_model.methods) <= set(METHODS)
        assert cfg.gold.minority_group in cfg.gold.groups
        for weights in cfg.gold.groups.values():
            assert abs(sum(weights.values()) - 1) < 1e-9


LEXICAL_KINDS = {"non_offensive", "sentiment", "neutral_tone"}  # scorers that load no model


@pytest.mark.parametrize("profile", ["smoke", "small"])
def test_cpu_profiles_are_offline_and_their_reward_model_reads_no_gold_network(profile):
    cfg = load_config(profile)
    assert cfg.device == "cpu"
    assert cfg.policy.model.startswith("build:")
    assert cfg.reward_model.backbone.startswith("pkg:")
    # issue 14 item 6: the learned reward is not read off a gold scorer's own features
    assert cfg.reward_model.backbone not in {t.model for t in cfg.gold.traits.values()}
    assert all(t.kind in LEXICAL_KINDS for t in cfg.gold.traits.values())
    assert cfg.data.allow_fixture


def test_small_profile_holds_enough_held_out_pairs_to_judge_the_reward_models():
    """At the largest minority proportion the majority still has >= 300 held-out pairs (issue 14 item 2), and the
    profile sweeps 3 seeds x 3 proportions x K in {2, 16} with every method."""
    cfg = load_config("small")
    test_pairs = cfg.data.n_preference_prompts * cfg.reward_model.test_fraction
    assert test_pairs * (1 - max(cfg.sweep.proportions)) >= 300
    assert len(cfg.sweep.seeds) == 3 and len(cfg.sweep.proportions) == 3 and cfg.reward_model.ks == [2, 16]
    assert cfg.policy_methods() == ["maxmin", "sharedrep-k2", "sharedrep-k16", "uniform"]


def test_paper_profile_names_the_upstream_models_and_data():
    cfg = load_config("paper")
    assert cfg.policy.model == "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    assert cfg.reward_model.backbone == "gpt2-large"
    assert {t.model for t in cfg.gold.traits.values()} == {
        "Ray2333/gpt2-large-helpful-reward_model",
        "Ray2333/gpt2-large-harmless-reward_model",
    }
    assert cfg.data.hub_dataset == "Anthropic/hh-rlhf"
    assert cfg.gold.groups == {"minority": {"helpful": 1.0}, "majority": {"helpful": 0.3, "harmless": 0.7}}
    assert cfg.reward_model.ks == [2, 16]
    assert cfg.policy_methods() == ["maxmin", "sharedrep-k2", "sharedrep-k16", "uniform"]


def test_dotted_overrides_apply_with_types():
    cfg = load_config(
        "smoke",
        {
            "grpo.beta": 0.25,
            "seed": "7",
            "sweep.proportions": [0.2, 0.3],
            "reward_model.ks": 4,  # a scalar for a list field becomes a one-item list
            "reward_model.sharedrep.learning_rate": "1e-3",
            "gold.groups.majority.harmless": 0.5,
            "gold.groups.majority.upbeat": 0.5,
            "run_dir": "/tmp/somewhere",
        },
    )
    assert cfg.grpo.beta == 0.25
    assert cfg.seed == 7 and isinstance(cfg.seed, int)
    assert cfg.sweep.proportions == [0.2, 0.3]
    assert cfg.reward_model.ks == [4]
    assert cfg.reward_model.sharedrep.learning_rate == pytest.approx(1e-3)
    assert cfg.gold.groups["majority"] == {"upbeat": 0.5, "harmless": 0.5}
    assert str(cfg.run_path) == "/tmp/somewhere"
    # untouched values keep the profile's
    assert cfg.grpo.num_generations == load_config("smoke").grpo.num_generations


def test_parse_override_reads_yaml_values():
    assert parse_override("sweep.seeds=[1, 2]") == ("sweep.seeds", [1, 2])
    assert parse_override("data.allow_hub=false") == ("data.allow_hub", False)
    assert parse_override("policy.model=a=b") == ("policy.model", "a=b")
    with pytest.raises(ConfigError, match="novalue"):
        parse_override("novalue")


def test_a_three_group_configuration_is_accepted():
    cfg = load_config(
        "smoke",
        {
            "gold.groups": {
                "minority": {"neutral": 1.0},
                "mid": {"neutral": 0.5, "harmless": 0.5},
                "majority": {"upbeat": 1.0},
            }
        },
    )
    assert list(cfg.gold.groups) == ["minority", "mid", "majority"]


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("grpo.betta", "beta"),
        ("sweep.seed", "seeds"),
        ("reward_model.pooling_", "pooling"),
        ("sedd", "seed"),
    ],
)
def test_unknown_key_suggests_the_nearest_name(key, suggestion):
    with pytest.raises(ConfigError) as info:
        load_config("smoke", {key: 1})
    message = str(info.value)
    assert repr(key) in message
    section = key.rpartition(".")[0]
    assert "did you mean" in message and repr(f"{section}.{suggestion}" if section else suggestion) in message


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"sweep.proportions": [0.1, 1.5]}, "1.5"),
        ({"sweep.proportions": [0.0]}, "proportion 0.0 is outside"),
        ({"sweep.proportions": [1]}, "proportion 1.0 is outside"),
        ({"sweep.proportions": [-0.2]}, "proportion -0.2 is outside"),
        ({"reward_model.ks": [2, 0]}, "K=0"),
        ({"reward_model.ks": [-3]}, "K=-3"),
        ({"sweep.seeds": []}, "sweep.seeds"),
        ({"sweep.proportions": []}, "sweep.proportions"),
        ({"reward_model.methods": ["maxmin", "dpo"]}, "'dpo'"),
        ({"reward_model.pooling": "max"}, "'max'"),
        ({"device": "tpu"}, "'tpu'"),
        ({"gold.groups.minority": {"neutral": 1.2, "harmless": -0.2}}, "-0.2"),
        ({"gold.groups.majority.harmless": 0.9}, "sum to 1.6"),
        ({"gold.groups.minority.neutral": 0.2}, "sum to 0.5"),
        ({"gold.groups.minority.kindness": 0.0}, "'kindness'"),
        ({"gold.minority_group": "nobody"}, "'nobody'"),
        ({"gold.groups": {"minority": {"helpful": 1.0}}}, "at least 2"),
        ({"gold.traits.harmless.kind": "magic"}, "'magic'"),
        ({"sft.learning_rate": "fast"}, "'fast'"),
        ({"seed": 1.5}, "1.5"),
        ({"data.allow_hub": "yes"}, "'yes'"),
        ({"data.eval_fraction": 1.0}, "1.0"),
        ({"grpo.beta.x": 1}, "'beta'"),
    ],
)
def test_bad_values_are_refused_naming_the_value(overrides, needle):
    with pytest.raises(ConfigError) as info:
        load_config("smoke", overrides)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_unknown_profile_lists_the_allowed_ones():
    with pytest.raises(ConfigError) as info:
        load_config("nosuchprofile")
    assert "'nosuchprofile'" in str(info.value)
    assert "smoke" in str(info.value) and "paper" in str(info.value)
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config("/no/such/dir/missing.yaml")


def test_profile_from_a_yaml_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "gold:\n  traits: {t: {kind: sentiment}}\n  groups: {a: {t: 1.0}, b: {t: 1.0}}\n  minority_group: a\n"
    )
    cfg = load_config(str(path), {"sweep.seeds": [3]})
    assert cfg.profile == "mine"
    assert cfg.sweep.seeds == [3]


def test_missing_hh_dir_is_refused_naming_it(tmp_path, monkeypatch):
    missing = tmp_path / "no_such_hh"
    with pytest.raises(ConfigError, match=str(missing)):
        load_config("smoke", {"data.hh_dir": str(missing)})
    monkeypatch.setenv(HH_DIR_ENV, str(missing))
    with pytest.raises(ConfigError, match=str(missing)):
        load_config("smoke")
    existing = tmp_path / "hh"
    existing.mkdir()
    (existing / "test.jsonl").write_text("")  # a data directory holds HH files
    monkeypatch.setenv(HH_DIR_ENV, str(existing))
    assert load_config("smoke").hh_dir() == str(existing)
    # the profile's value wins over the environment
    assert load_config("smoke", {"data.hh_dir": str(tmp_path)}).hh_dir() == str(tmp_path)
