"""docs/deviations.md, the paper-upstream profile and `sharedrep diff` agree (GitHub issue 12 item 2).

Each switch in the table is a setting; paper-upstream holds its upstream value; paper and paper-upstream
differ in nothing else. The new switches are validated, reach the stages' parameter hashes, and reach
the code that uses them (sampling top-k and prompt, GRPO loss type).
"""

import re
from pathlib import Path

import pytest
import tiny_backbones
import torch
import yaml

from sharedrep_utils.cli import main
from sharedrep_utils.config import ABSENT, ConfigError, config_diff, flatten, load_config

TABLE = Path(__file__).resolve().parents[1] / "docs" / "deviations.md"
NO_SWITCH = "—"


def table_rows() -> list[dict[str, str]]:
    """The deviations table as dicts keyed by its header; a cell may hold `\\|` (an escaped pipe)."""
    lines = [line for line in TABLE.read_text().splitlines() if line.startswith("|")]
    cells = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    header, rows = cells[0], cells[2:]  # cells[1] is the |---| line
    assert header == [
        "What upstream does (evidence)",
        "Kit default (`paper`)",
        "Switch",
        "Upstream value",
        "Why the kit's default",
    ]
    assert all(len(row) == len(header) for row in rows), [row[:1] for row in rows if len(row) != len(header)]
    return [dict(zip(header, row)) for row in rows]


def code(cell: str) -> str:
    assert cell.startswith("`") and cell.endswith("`"), cell
    return cell.strip("`")


def switches() -> dict[str, object]:
    """Switch -> upstream value (read as YAML, as a profile or --set reads it)."""
    out = {}
    for row in table_rows():
        if row["Switch"] == NO_SWITCH:
            assert row["Upstream value"] == NO_SWITCH, row
            continue
        key = code(row["Switch"])
        assert key not in out, f"{key} has two rows"
        out[key] = yaml.safe_load(code(row["Upstream value"]))
    return out


def test_the_table_names_the_issues_switches():
    named = set(switches())
    assert {
        "reward_model.maxmin.train_passes",
        "generation.top_k",
        "reward_model.maxmin.init",
        "reward_model.maxmin.bias",
        "gold.text",
        "reward_model.text",
        "data.single_turn_only",
        "generation.chat_template",
        "sft.per_device_train_batch_size",
        "sft.gradient_accumulation_steps",
        "reward_model.test_fraction",
        "gold.preference_ties",
        "grpo.loss_type",
        "evaluation.prompts_per_seed",
        "reward_model.drop_long_pairs",
        "grpo.use_bias_correction_kl",  # issue 22: tests/test_upstream_switches.py measures each one's effect
        "grpo.gold_reward_text",
        "sft.model_dtype",
        "gold.dtype",
    } <= named


def test_every_row_cites_upstream_evidence():
    for row in table_rows():
        cited = row["What upstream does (evidence)"]
        assert re.search(r"\.(py|sh|ipynb|yaml)\b", cited), cited  # a file of the upstream code (or its TRL)


@pytest.mark.parametrize(("key", "upstream"), sorted(switches().items()))
def test_each_switch_is_a_setting_and_paper_upstream_sets_the_upstream_value(key, upstream):
    assert key in flatten(load_config("paper")), f"the table names {key!r}, which is not a setting"
    assert flatten(load_config("paper-upstream"))[key] == upstream


def test_paper_and_paper_upstream_differ_only_in_the_tables_switches():
    """Keeps the two profiles in sync: a change to paper.yaml that is not a documented switch must be
    made in paper-upstream.yaml too."""
    documented = set(switches())
    undocumented = [(k, a, b) for k, a, b in config_diff("paper", "paper-upstream") if k not in documented]
    assert undocumented == []


def test_config_diff_lists_changed_and_one_sided_settings():
    rows = config_diff(load_config("smoke"), load_config("smoke", {"grpo.beta": 0.2, "grpo.trainer_kwargs.foo": 1}))
    assert rows == [("grpo.beta", 0.05, 0.2), ("grpo.trainer_kwargs.foo", ABSENT, 1)]
    assert config_diff("smoke", "smoke") == []


def test_diff_command_prints_one_line_per_setting(capsys):
    assert main(["diff", "paper", "paper-upstream"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        r"reward_model\.maxmin\.train_passes +1 -> 2",
        next(line for line in out if line.startswith("reward_model.maxmin.train_passes")),
    )
    assert re.fullmatch(r"gold\.text +hh -> chat", next(line for line in out if line.startswith("gold.text")))
    assert (
        out[-1] == f"{len(config_diff('paper', 'paper-upstream'))} setting(s) differ between paper and paper-upstream."
    )


def test_diff_command_refuses_an_unknown_profile(capsys):
    assert main(["diff", "paper", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "'nope'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"gold.text": "html"}, "gold.text 'html' is not one of hh, chat."),
        ({"reward_model.text": "raw"}, "reward_model.text 'raw' is not one of hh, chat."),
        ({"gold.preference_ties": "random"}, "gold.preference_ties 'random' is not one of drop, first."),
        ({"grpo.loss_type": "ppo"}, "grpo.loss_type 'ppo' is not one of grpo, bnpo,"),
        ({"generation.top_k": -1}, "generation.top_k -1 is negative"),
        ({"reward_model.maxmin.train_passes": 0}, "reward_model.maxmin.train_passes 0 must be at least 1."),
        (
            {"reward_model.sharedrep.init": "xavier"},
            "reward_model.sharedrep.init 'xavier' is not one of normal, torch.",
        ),
    ],
)
def test_bad_switch_values_are_one_clear_sentence(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("paper", override)


def test_top_k_null_or_0_means_none():
    assert load_config("smoke", {"generation.top_k": None}).generation.top_k is None
    assert load_config("smoke").generation.top_k == 50  # transformers' default, which upstream sampled with


# --- the switches reach the stages' parameter hashes -------------------------------------------


@pytest.fixture
def no_inputs(monkeypatch):
    """Stage params() without the run's earlier stages: every required manifest reads as one fixed hash."""
    from sharedrep_utils.stages import evaluate, grpo, preferences, responses
    from sharedrep_utils.stages import reward_models as rm_stage

    for module in (responses, preferences, rm_stage, grpo, evaluate):
        monkeypatch.setattr(module, "require", lambda *a, **k: {"params_hash": "upstream"})
    return {"responses": responses, "preferences": preferences, "rm": rm_stage, "grpo": grpo, "evaluate": evaluate}


@pytest.mark.parametrize(
    ("stage", "key", "value"),
    [
        ("responses", "generation.top_k", 0),
        ("responses", "generation.chat_template", False),
        ("responses", "gold.text", "chat"),
        ("responses", "reward_model.text", "chat"),  # responses keep run-on turns for the chat text
        ("preferences", "gold.preference_ties", "first"),
        ("rm", "reward_model.text", "chat"),
        ("rm", "reward_model.maxmin.train_passes", 2),
        ("rm", "reward_model.maxmin.init", "torch"),
        ("rm", "reward_model.maxmin.bias", True),
        ("rm", "reward_model.drop_long_pairs", True),
        ("grpo", "grpo.loss_type", "bnpo"),
        ("gold-grpo", "gold.text", "chat"),
        ("evaluate", "gold.text", "chat"),
        ("grpo", "grpo.use_bias_correction_kl", False),
        ("gold-grpo", "grpo.gold_reward_text", "trl"),
        ("gold-grpo", "gold.dtype", "bfloat16"),
        ("responses", "gold.dtype", "bfloat16"),
        ("evaluate", "gold.dtype", "auto"),
        ("evaluate", "generation.chat_template", False),
    ],
)
def test_a_changed_switch_reruns_the_stage_it_changes(no_inputs, stage, key, value):
    def params(cfg):
        if stage in ("responses",):
            return no_inputs["responses"].params(cfg)
        if stage in ("preferences", "rm"):
            return no_inputs[stage].params(cfg, 42, 0.1)
        if stage == "grpo":
            return no_inputs["grpo"].params(cfg, 42, 0.1, "maxmin")
        if stage == "gold-grpo":
            return no_inputs["grpo"].params(cfg, 42, None, "gold")
        return no_inputs["evaluate"].params(cfg, 42, 0.1, "maxmin")

    assert params(load_config("smoke")) != params(load_config("smoke", {key: value}))


def test_grpo_passes_the_loss_type_to_trl(tmp_path):
    from sharedrep_utils.stages import grpo

    args = grpo.grpo_arguments(load_config("paper-upstream"), "cpu", 0, tmp_path)
    assert (args.loss_type, args.gradient_accumulation_steps) == ("bnpo", 2)
    assert grpo.grpo_arguments(load_config("paper"), "cpu", 0, tmp_path).loss_type == "dapo"  # TRL 1.16's default


# --- sampling: top-k and upstream's plain prompt reach generate ---------------------------------


class RecordingModel:
    """Stands in for a causal LM: records generate()'s arguments and appends two fixed tokens."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls = []

    def generate(self, input_ids, attention_mask, **kwargs):
        self.calls.append({"input_ids": input_ids, **kwargs})
        n = kwargs.get("num_return_sequences", 1)
        new = torch.tensor([[5, 6]]).expand(input_ids.shape[0] * n, 2)
        return torch.cat([input_ids.repeat_interleave(n, dim=0), new], dim=1)


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_backbones.bpe_tokenizer()
    tok.pad_token = tok.eos_token
    tok.chat_template = "{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + eos_token }}{% endfor %}"
    return tok


def test_top_k_is_passed_when_sampling_and_dropped_when_greedy_or_0(tokenizer):
    from sharedrep_utils.policy import generate

    model = RecordingModel()
    prompts = ["\n\nHuman: how do I boil an egg?"]
    generate(model, tokenizer, prompts, max_new_tokens=2, batch_size=4, do_sample=True, top_k=50)
    generate(model, tokenizer, prompts, max_new_tokens=2, batch_size=4, do_sample=True, top_k=0)
    generate(model, tokenizer, prompts, max_new_tokens=2, batch_size=4, do_sample=False, top_k=50)
    assert [call["top_k"] for call in model.calls] == [50, None, None]  # None: no top-k (not transformers' 50)


def test_plain_prompt_is_upstreams_disable_chat_template(tokenizer):
    from sharedrep_utils.policy import generate

    model = RecordingModel()
    prompt = "\n\nHuman: how do I boil an egg?\n\nAssistant: in water\n\nHuman: how long?"
    generate(model, tokenizer, [prompt], max_new_tokens=2, batch_size=1, do_sample=True, chat_template=False)
    plain = "Human: how do I boil an egg?\nAssistant: in water\nHuman: how long?"  # no trailing "Assistant:"
    assert model.calls[0]["input_ids"][0].tolist() == tokenizer(plain)["input_ids"]  # with the tokenizer's specials
    generate(model, tokenizer, [prompt], max_new_tokens=2, batch_size=1, do_sample=True)
    assert "<|user|>" in tokenizer.decode(model.calls[1]["input_ids"][0])


def test_drop_long_pairs_drops_a_pair_whose_either_side_is_over_max_length(tokenizer):
    import pandas as pd

    from sharedrep_utils.stages.reward_models import without_long_pairs

    pairs = pd.DataFrame(
        {
            "prompt": ["\n\nHuman: q?"] * 3,
            "chosen": ["short", "a much much longer answer " * 10, "ok"],
            "rejected": ["no", "no", "a much much longer answer " * 10],
            "group_id": [0, 1, 1],
        }
    )
    cfg = load_config("smoke", {"reward_model.max_length": 40})
    assert without_long_pairs(pairs, tokenizer, cfg, None)[0] is pairs  # off by default: truncation
    kept, dropped = without_long_pairs(
        pairs,
        tokenizer,
        load_config("smoke", {"reward_model.max_length": 40, "reward_model.drop_long_pairs": True}),
        None,
    )
    assert dropped == 2 and kept["chosen"].tolist() == ["short"]
