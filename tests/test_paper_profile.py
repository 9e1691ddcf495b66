"""The paper profile loads and runs the same code path as smoke, up to the first hub download.

With HF_HUB_OFFLINE=1 (and sockets blocked by conftest) each stage must fail exactly where it needs
a hub model, naming that model, and leave no finished-looking artifact behind.
"""

import json

import pytest

from sharedrep_utils.config import load_config
from sharedrep_utils.gold import GoldScorer
from sharedrep_utils.reward_models import FeatureExtractor
from sharedrep_utils.stages import sft


@pytest.fixture
def paper(tmp_path):
    hh = tmp_path / "hh"
    hh.mkdir()
    rows = [
        {
            "chosen": f"\n\nHuman: question {i}?\n\nAssistant: answer {i}.",
            "rejected": f"\n\nHuman: question {i}?\n\nAssistant: no.",
        }
        for i in range(40)
    ]
    (hh / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return load_config("paper", {"run_dir": str(tmp_path / "run"), "data.hh_dir": str(hh), "device": "cpu"})


def test_paper_profile_is_the_upstream_setup(paper):
    assert paper.policy.model == "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    assert paper.reward_model.backbone == "gpt2-large"
    assert {t.model for t in paper.gold.traits.values()} == {
        "Ray2333/gpt2-large-helpful-reward_model",
        "Ray2333/gpt2-large-harmless-reward_model",
    }
    assert paper.gold.groups == {"minority": {"helpful": 1.0}, "majority": {"helpful": 0.3, "harmless": 0.7}}
    assert paper.sweep.proportions == [0.01, 0.05, 0.1, 0.15, 0.2] and paper.sweep.seeds == [42, 123]
    assert paper.reward_model.ks == [2, 16] and paper.data.n_eval_prompts == 2000
    assert (paper.reward_model.sharedrep.learning_rate, paper.reward_model.maxmin.learning_rate) == (5e-4, 5e-5)
    assert (paper.grpo.learning_rate, paper.grpo.beta, paper.grpo.num_generations) == (1e-5, 0.05, 2)


def test_paper_profile_matches_the_upstream_experiment_sizes(paper):
    """Issue 8: 10K prompts with 2 responses each, 5 proportions, seeds 42 and 123, K 2 and 16,
    2,000 test prompts, 256 new tokens everywhere, greedy evaluation."""
    import inspect

    from sharedrep_utils.stages import responses

    assert paper.data.n_preference_prompts == 10_000
    assert "num_return_sequences=2" in inspect.getsource(responses.main)  # two responses per prompt
    assert paper.sweep.proportions == [0.01, 0.05, 0.1, 0.15, 0.2]
    assert paper.sweep.seeds == [42, 123]
    assert paper.reward_model.ks == [2, 16]
    assert paper.data.n_eval_prompts == 2_000
    assert paper.generation.max_new_tokens == paper.evaluation.max_new_tokens == 256
    assert paper.grpo.max_completion_length == 256
    assert paper.evaluation.do_sample is False  # greedy
    assert paper.grpo.num_generations == 2 and paper.grpo.per_device_train_batch_size == 4
    assert paper.data.n_grpo_prompts == 0  # GRPO on the 10K preference prompts
    assert len(paper.policy_methods()) == 4  # maxmin, sharedrep-k2, sharedrep-k16, uniform


def test_sft_stage_reaches_the_hub_model_and_writes_nothing(paper):
    with pytest.raises(OSError, match="TinyLlama"):
        sft.main(paper)
    run = paper.run_path
    assert not (run / "sft" / "manifest.json").exists()
    assert not [p for p in run.rglob("*") if p.is_dir() and ".partial-" in p.name]


def test_reward_backbone_and_gold_scorers_are_hub_models(paper):
    with pytest.raises(OSError, match="gpt2-large"):
        FeatureExtractor(paper.reward_model)
    with pytest.raises(OSError, match="Ray2333"):
        GoldScorer(paper.gold)
