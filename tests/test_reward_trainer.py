"""End-to-end reward models (freeze_backbone: false) through TRL's RewardTrainer, on tiny backbones."""

import json

import pandas as pd
import pytest
import tiny_backbones
import torch

from sharedrep_utils.config import HeadConfig, RewardModelConfig, load_config
from sharedrep_utils.reward_models import MinOverGroupsReward, new_heads, save_reward_model, text_rewards
from sharedrep_utils.reward_trainer import GroupPreferenceCollator, pair_texts, train_end_to_end
from sharedrep_utils.runs import preferences_dir, responses_dir, rm_dir, stage_output

FORMAT = "{dialogue}\n\nAssistant: {response}"


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    return {kind: tiny_backbones.build(kind, root / kind) for kind in ("gpt2", "llama", "bert")}


def opposed_pairs(n: int = 8) -> pd.DataFrame:
    """Group 0 prefers the kind answer, group 1 the rude one: only group-specific rewards fit both."""
    kind, rude = "a kind and helpful answer", "a rude reply"
    rows = []
    for i in range(n):
        group = i % 2
        chosen, rejected = (kind, rude) if group == 0 else (rude, kind)
        rows.append({"prompt": f"\n\nHuman: question {i}?", "chosen": chosen, "rejected": rejected, "group_id": group})
    return pd.DataFrame(rows)


def rm_config(path, pooling="last") -> RewardModelConfig:
    return RewardModelConfig(backbone=str(path), pooling=pooling, max_length=32, batch_size=4, text_format=FORMAT)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_collator_keeps_trls_layout_and_adds_group_ids():
    collator = GroupPreferenceCollator(pad_token_id=0)
    batch = collator(
        [
            {"chosen_ids": [1, 2, 3], "rejected_ids": [4], "group_id": 1},
            {"chosen_ids": [5], "rejected_ids": [6, 7], "group_id": 0},
        ]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [5, 0, 0], [4, 0, 0], [6, 7, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert batch["group_id"].tolist() == [1, 0] and batch["group_id"].dtype == torch.long


@pytest.mark.parametrize(("kind", "pooling"), [("gpt2", "last"), ("llama", "last"), ("bert", "cls")])
def test_sharedrep_trains_end_to_end_and_fits_opposed_groups(backbones, tmp_path, kind, pooling):
    pairs = opposed_pairs()
    rm = rm_config(backbones[kind], pooling)
    # PyTorch's init: a two-layer head from GPT-2's N(0, 0.02) starts too flat to move in 12 steps here
    hp = HeadConfig(learning_rate=3e-3, num_epochs=12, batch_size=len(pairs), tanh=True, init="torch")
    start = snapshot(tiny_backbones_model(backbones[kind]))
    model, tokenizer, log = train_end_to_end("sharedrep", 2, 2, pairs, rm, hp, seed=0, output_dir=tmp_path / "t")
    losses = [row["loss"] for row in log if "loss" in row]
    assert len(losses) == 12  # one full-batch step per epoch, logged each step
    assert losses[-1] < losses[0] - 0.05, losses
    assert changed(start, model.backbones[0])  # the backbone itself was trained
    chosen, rejected = (text_rewards(model, tokenizer, t, rm) for t in pair_texts(pairs, FORMAT))
    ids = torch.tensor(pairs["group_id"].tolist()).view(-1, 1)
    margin = (chosen.gather(1, ids) - rejected.gather(1, ids)).squeeze(1)
    assert (margin > 0).all(), margin  # each group's own reward orders its own pairs


def tiny_backbones_model(path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(path)


@pytest.mark.parametrize("n_groups", [2, 3])
def test_maxmin_pairs_only_move_their_own_groups_backbone_and_head(backbones, tmp_path, n_groups):
    own = 1  # every pair is group 1's
    pairs = opposed_pairs().assign(group_id=own)
    rm = rm_config(backbones["gpt2"])
    hp = HeadConfig(learning_rate=1e-2, num_epochs=2, batch_size=4, tanh=False)
    start = snapshot(tiny_backbones_model(backbones["gpt2"]))
    model, _, _ = train_end_to_end("maxmin", None, n_groups, pairs, rm, hp, seed=0, output_dir=tmp_path / "t")
    assert len(model.backbones) == n_groups  # MaxMin: one backbone per group, nothing shared
    torch.manual_seed(0)  # train_end_to_end seeds, loads the backbone, then builds one head per group
    init = [new_heads("maxmin", model.heads.dim, 1, None, hp) for _ in range(n_groups)]
    for u in range(n_groups):
        moved = u == own
        assert changed(start, model.backbones[u]) is moved, u
        assert torch.equal(model.heads.net.weight[u], init[u].net.weight[0]) is not moved, u
    assert model.heads.net.bias is None  # upstream's GPT-2 score layer has no bias
    # one trainer run per group, on that group's pairs only: 8 pairs, batch 4, 2 epochs; the others never ran
    assert model.runs == [
        {"groups": [u], "pairs": 8 if u == own else 0, "optimizer_steps": 4 if u == own else 0} for u in range(n_groups)
    ]


def test_maxmin_end_to_end_trains_each_group_in_its_own_run_and_passes_restart_the_schedule(backbones, tmp_path):
    """Upstream's MaxMin script: one process per group, `trainer.train()` called twice (train_passes: 2),
    so each group's run has its own steps, and its learning rate starts again at the full rate."""
    pairs = opposed_pairs(12)  # 6 pairs per group
    rm = rm_config(backbones["gpt2"])
    hp = HeadConfig(learning_rate=1e-2, num_epochs=2, batch_size=4, tanh=False, lr_scheduler="linear", train_passes=2)
    model, _, log = train_end_to_end("maxmin", None, 2, pairs, rm, hp, seed=0, output_dir=tmp_path / "t")
    per_pass = 2 * 2  # 2 epochs x ceil(6 / 4) steps
    assert model.runs == [{"groups": [u], "pairs": 6, "optimizer_steps": 2 * per_pass} for u in range(2)]
    for u in range(2):
        rates = [row["learning_rate"] for row in log if "learning_rate" in row and row["groups"] == [u]]
        assert len(rates) == 2 * per_pass
        assert rates[:per_pass] == rates[per_pass:]  # the schedule restarts ...
        assert rates[0] == 1e-2 and rates[per_pass - 1] < rates[0]  # ... at the full rate, after decaying


def test_sharedrep_pairs_only_move_their_own_mixing_row(backbones, tmp_path):
    pairs = opposed_pairs().assign(group_id=1)
    rm = rm_config(backbones["llama"])
    hp = HeadConfig(learning_rate=1e-2, num_epochs=2, batch_size=4, tanh=True)
    model, _, _ = train_end_to_end("sharedrep", 3, 2, pairs, rm, hp, seed=5, output_dir=tmp_path / "t")
    torch.manual_seed(5)
    init = new_heads("sharedrep", model.heads.dim, 2, 3, hp)
    assert torch.equal(model.heads.net[1].weight[0], init.net[1].weight[0])  # group 0 had no pairs
    assert not torch.equal(model.heads.net[1].weight[1], init.net[1].weight[1])


@pytest.mark.parametrize(("kind", "method", "k"), [("gpt2", "maxmin", None), ("bert", "sharedrep", 2)])
def test_save_and_load_give_identical_rewards(backbones, tmp_path, kind, method, k):
    pairs = opposed_pairs()
    rm = rm_config(backbones[kind], "last" if kind == "gpt2" else "mean")
    hp = HeadConfig(learning_rate=1e-2, num_epochs=1, batch_size=4, tanh=method == "sharedrep")
    model, tokenizer, _ = train_end_to_end(method, k, 2, pairs, rm, hp, seed=1, output_dir=tmp_path / "t")
    save_reward_model(model, tokenizer, tmp_path / "rm", ["minority", "majority"], rm, {"seed": 1})
    config = json.loads((tmp_path / "rm" / "config.json").read_text())
    assert config["freeze_backbone"] is False and len(config["backbones"]) == len(model.backbones)
    assert (tmp_path / "rm" / config["backbones"][0] / "model.safetensors").exists()
    prompts = ["\n\nHuman: question 1?", "\n\nHuman: something else entirely?"]
    responses = ["a kind and helpful answer", "a rude reply"]
    texts = [FORMAT.format(dialogue=p, response=r) for p, r in zip(prompts, responses)]
    before = text_rewards(model, tokenizer, texts, rm)
    # the GRPO reward reads its backbone(s) from the saved directory, not from rm.backbone
    reward = MinOverGroupsReward(tmp_path / "rm", RewardModelConfig(backbone="not/used", batch_size=4))
    assert torch.equal(reward.all_rewards(prompts, responses), before)
    assert reward.rewards(prompts, responses).tolist() == before.min(dim=1).values.tolist()


# --- the stage takes the end-to-end path and GRPO's reward callable loads its result ----------


def tiny_run(tmp_path, backbone, freeze: bool):
    cfg = load_config(
        "smoke",
        {
            "run_dir": str(tmp_path / "run"),
            "reward_model.backbone": str(backbone),
            "reward_model.pooling": "last",
            "reward_model.max_length": 32,
            "reward_model.batch_size": 8,
            "reward_model.test_fraction": 0.25,
            "reward_model.ks": [2],
            "reward_model.freeze_backbone": freeze,
            **{f"reward_model.{m}.num_epochs": 2 for m in ("maxmin", "sharedrep", "uniform")},
        },
    )
    pairs = pd.concat([opposed_pairs(12)], ignore_index=True).assign(
        group=lambda d: d["group_id"].map({0: "minority", 1: "majority"})
    )
    with stage_output(responses_dir(cfg.run_path), "responses", {"fixture": 1}) as stage:
        pd.DataFrame(
            {"prompt": pairs["prompt"], "response_0": pairs["chosen"], "response_1": pairs["rejected"]}
        ).to_parquet(stage["path"] / "responses.parquet")
    with stage_output(preferences_dir(cfg.run_path, 0, 0.5), "preferences", {"fixture": 1}) as stage:
        pairs.to_parquet(stage["path"] / "preferences.parquet")
    return cfg


@pytest.mark.parametrize("freeze", [False, True])
def test_stage_trains_each_method_once_and_grpo_loads_it(backbones, tmp_path, monkeypatch, freeze):
    from sharedrep_utils import report, reward_trainer, rewards
    from sharedrep_utils.stages import reward_models as stage

    cfg = tiny_run(tmp_path, backbones["gpt2"], freeze)
    calls = []
    if freeze:
        real = stage.train_heads
        monkeypatch.setattr(
            stage, "train_heads", lambda method, *a, **kw: calls.append(method) or real(method, *a, **kw)
        )
    else:
        real = reward_trainer.train_end_to_end
        monkeypatch.setattr(
            reward_trainer, "train_end_to_end", lambda method, *a, **kw: calls.append(method) or real(method, *a, **kw)
        )
    table = report.metrics_table(stage.main(cfg, 0, 0.5))
    assert calls == ["maxmin", "sharedrep", "uniform"]  # once each; MaxMin's per-group runs happen inside
    assert set(table["policy"]) == {"maxmin", "sharedrep-k2", "uniform"}
    assert set(table["group"]) == {"overall", "minority", "majority"} and set(table["split"]) == {"train", "test"}
    out = rm_dir(cfg.run_path, 0, 0.5)
    for name in ("maxmin", "sharedrep-k2", "uniform"):
        config = json.loads((out / name / "config.json").read_text())
        assert bool(config.get("backbones")) is not freeze
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert metrics["test"]["minority"]["n"] == 2 and metrics["test"]["majority"]["n"] == 2  # round(6 × 0.25)
        # 4 train pairs per group, batch 16, 2 epochs: MaxMin one run per group, the others one run on all 8
        expected = (
            [{"groups": [g], "pairs": 4, "optimizer_steps": 2} for g in ("minority", "majority")]
            if name == "maxmin"
            else [{"groups": ["minority", "majority"], "pairs": 8, "optimizer_steps": 2}]
        )
        assert metrics["runs"] == expected
    if not freeze:
        assert (out / "maxmin" / "backbone1").is_dir() and (out / "uniform" / "backbone").is_dir()
        assert not (out / ".trainer").exists()
    reward = rewards.reward_function(cfg, 0, 0.5, "sharedrep-k2", "cpu")
    prompts = [[{"role": "user", "content": "question 1?"}], [{"role": "user", "content": "question 2?"}]]
    completions = [
        [{"role": "assistant", "content": "a kind and helpful answer"}],
        [{"role": "assistant", "content": "a rude reply"}],
    ]
    values = reward(prompts, completions)
    # the reward GRPO calls is the min over the saved model's two group rewards of the same HH texts
    saved = MinOverGroupsReward(out / "sharedrep-k2", cfg.reward_model)
    per_group = saved.all_rewards(
        ["\n\nHuman: question 1?", "\n\nHuman: question 2?"], ["a kind and helpful answer", "a rude reply"]
    )
    assert per_group.shape == (2, 2)
    assert values == pytest.approx([min(row) for row in per_group.tolist()], abs=1e-6)
    assert values[0] != values[1]  # the two replies get different rewards
    # a second run with the same parameters is read from the manifest, nothing retrains
    calls.clear()
    stage.main(cfg, 0, 0.5)
    assert calls == []
