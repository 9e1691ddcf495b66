"""Issue 22 item 1: the last departures from upstream are switches, and each switch changes what it says.

Each test measures the switch's effect on a tiny input against a value worked out by hand: TRL's KL term with
and without the importance weight, the gold GRPO reward's text, the SFT weights' dtype, the gold scorers'
dtype, and upstream's plain prompt in evaluation.
"""

import math
import re

import pytest
import tiny_backbones
import torch

from sharedrep_utils.config import ConfigError, GoldConfig, TraitConfig, load_config
from sharedrep_utils.gold import GoldMinReward, GoldScorer, trl_reward_texts
from sharedrep_utils.standins import TINYLLAMA_CHAT_TEMPLATE


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"sft.model_dtype": "fp8"}, "sft.model_dtype 'fp8' is not one of float32, bfloat16."),
        ({"gold.dtype": "half"}, "gold.dtype 'half' is not one of float32, bfloat16, float16, auto."),
        ({"grpo.gold_reward_text": "chat"}, "grpo.gold_reward_text 'chat' is not one of scored, trl."),
    ],
)
def test_bad_values_are_one_clear_sentence(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("paper", override)


def test_the_profiles_hold_the_kit_and_the_upstream_values():
    kit, upstream = load_config("paper"), load_config("paper-upstream")
    assert (kit.grpo.use_bias_correction_kl, upstream.grpo.use_bias_correction_kl) == (True, False)
    assert (kit.grpo.gold_reward_text, upstream.grpo.gold_reward_text) == ("scored", "trl")
    assert (kit.sft.model_dtype, upstream.sft.model_dtype) == ("float32", "bfloat16")
    assert kit.gold.dtype == upstream.gold.dtype == "float32"


def test_a_changed_switch_reruns_sft_and_the_defaults_keep_earlier_runs_hashes(monkeypatch):
    from sharedrep_utils.stages import grpo, sft

    kit, bf16 = load_config("smoke"), load_config("smoke", {"sft.model_dtype": "bfloat16"})
    assert sft.params(kit) != sft.params(bf16)
    assert "model_dtype" not in sft.params(kit)["sft"]  # a run made before the setting existed is still done
    monkeypatch.setattr(grpo, "require", lambda *a, **k: {"params_hash": "upstream"})
    made = grpo.params(kit, 42, None, "gold")
    assert {"use_bias_correction_kl", "gold_reward_text"}.isdisjoint(made["grpo"]) and "gold_dtype" not in made
    # a changed switch enters the hash of the policies that read it, and only theirs
    for key, value in (
        ("grpo.use_bias_correction_kl", False),
        ("grpo.gold_reward_text", "trl"),
        ("gold.dtype", "bfloat16"),
    ):
        changed = load_config("smoke", {key: value})
        assert grpo.params(changed, 42, None, "gold") != made, key
    trl = load_config("smoke", {"grpo.gold_reward_text": "trl"})
    assert grpo.params(trl, 42, 0.1, "maxmin") == grpo.params(kit, 42, 0.1, "maxmin")  # a learned reward ignores it
    no_kl = load_config("smoke", {"grpo.use_bias_correction_kl": False})
    assert grpo.params(no_kl, 42, 0.1, "maxmin") != grpo.params(kit, 42, 0.1, "maxmin")


# --- GRPO's KL term: TRL 1.16's importance-weighted k3 vs TRL 0.19.1's plain k3 -----------------------------


def tiny_policy(tmp_path):
    """A tiny Llama causal LM (the tiny backbone with a seeded LM head) and a tokenizer with TinyLlama's template."""
    from transformers import LlamaForCausalLM

    path = tiny_backbones.build("llama", tmp_path / "llama")
    torch.manual_seed(0)
    LlamaForCausalLM.from_pretrained(path).save_pretrained(path)
    tokenizer = tiny_backbones.bpe_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = TINYLLAMA_CHAT_TEMPLATE
    return path, tokenizer


C = 0.7  # ref_logp - logp on every completion token
BETA = 0.5


def kl_loss_and_grads(tmp_path, profile: str) -> tuple[float, dict[str, torch.Tensor]]:
    """TRL's GRPO loss on one tiny batch whose advantages are 0 (so the loss is β·KL alone), its reference
    log-probs the policy's own plus C, and the gradient it gives every weight."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from sharedrep_utils.stages.grpo import grpo_arguments

    path, tokenizer = tiny_policy(tmp_path)
    args = grpo_arguments(
        load_config(profile), "cpu", 0, tmp_path / profile, beta=BETA, loss_type="bnpo",
        per_device_train_batch_size=2, num_generations=2, max_completion_length=4,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=str(path),
        reward_funcs=[lambda completions, **kwargs: [0.0] * len(completions)],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": [{"role": "user", "content": "boil an egg"}]}] * 2),
        processing_class=tokenizer,
    )
    model = trainer.model.eval()  # eval mode: no accumulation scaling; a Llama has no dropout to switch off
    torch.manual_seed(0)
    prompt_ids, completion_ids = torch.randint(0, 200, (2, 3)), torch.randint(0, 200, (2, 4))
    with torch.no_grad():  # the policy's own log-probs of the completion tokens, computed here by hand
        logits = model(torch.cat([prompt_ids, completion_ids], 1)).logits[:, 2:-1] / args.temperature
        logp = torch.log_softmax(logits.float(), -1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    inputs = {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": torch.ones_like(completion_ids),
        "advantages": torch.zeros(2),
        "ref_per_token_logps": logp + C,
    }
    model.zero_grad()
    loss = trainer._compute_loss(model, inputs)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_bias_corrected_kl_changes_the_gradient_not_the_value(tmp_path):
    """Per token, with r = ref − logp = C: TRL 0.19.1's k3 = e^C − C − 1 has gradient (1 − e^C)·∇logp; TRL 1.16
    multiplies it by the ratio exp(logp − logp.detach()) (value 1, gradient ∇logp), adding k3·∇logp, so its
    gradient is −C·∇logp. Same loss; every weight's gradient scaled by C / (e^C − 1) = 0.6905."""
    plain_loss, plain = kl_loss_and_grads(tmp_path, "paper-upstream")
    corrected_loss, corrected = kl_loss_and_grads(tmp_path, "paper")
    k3 = math.exp(C) - C - 1
    assert plain_loss == pytest.approx(BETA * k3, rel=1e-5)
    assert corrected_loss == pytest.approx(BETA * k3, rel=1e-5)
    ratio = C / (math.exp(C) - 1)
    assert ratio == pytest.approx(0.6905, abs=1e-4)
    assert plain.keys() == corrected.keys() and plain
    for name, grad in plain.items():
        assert torch.allclose(corrected[name], ratio * grad, rtol=1e-3, atol=1e-9), name
    assert max(g.abs().max().item() for g in plain.values()) > 1e-4  # the gradients are not all ~0


# --- the gold policy's GRPO reward text ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def gold_rm(tmp_path_factory):
    """A tiny GPT-2 reward model (one logit, no pad token) with room for 256 tokens."""
    import transformers

    out = tmp_path_factory.mktemp("gold_rm")
    tokenizer = tiny_backbones.bpe_tokenizer()
    eos = tokenizer.eos_token_id
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=256, num_labels=1,
        bos_token_id=eos, eos_token_id=eos,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.GPT2ForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def gold_config(path, **changes) -> GoldConfig:
    trait = TraitConfig(model=str(path), max_length=256)
    return GoldConfig(traits={"helpful": trait}, groups={"a": {"helpful": 1.0}, "b": {"helpful": 1.0}}, **changes)


def logit(path, text: str, dtype=torch.float32) -> float:
    """The model's score of one text, by a plain forward pass (no padding, no batching)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).eval()
    ids = AutoTokenizer.from_pretrained(path)(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits[0, 0].float().item()


PROMPT = [{"role": "user", "content": "How do I boil an egg?"}]
RUN_ON = [{"role": "assistant", "content": "Put it in water.\n\nHuman: thanks "}]  # runs on into a user turn
RENDERED = (  # upstream's template as transformers renders it: indentation, literal </s>, run-on turn, spaces kept
    "    <|user|>\n    How do I boil an egg?</s>\n    <|assistant|>\n    Put it in water.\n\nHuman: thanks </s>\n    "
)


def test_upstreams_reward_text_is_trls_rendering_with_its_template(gold_rm):
    tokenizer = tiny_backbones.bpe_tokenizer()
    [text] = trl_reward_texts([PROMPT], [RUN_ON], tokenizer)
    assert text == RENDERED
    multi = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    [text] = trl_reward_texts([multi], [[{"role": "assistant", "content": "d"}]], tokenizer)
    expected = "    <|user|>\n    a</s>\n    <|assistant|>\n    b</s>\n    <|user|>\n    c</s>\n"
    expected += "    <|assistant|>\n    d</s>\n    "
    assert text == expected


def test_the_two_gold_reward_texts_score_what_each_says(gold_rm):
    scorer = GoldScorer(gold_config(gold_rm), "cpu")
    kit, upstream = GoldMinReward(scorer, "scored"), GoldMinReward(scorer, "trl")
    hh = "\n\nHuman: How do I boil an egg?\n\nAssistant: Put it in water."  # model-card format, run-on cut
    assert kit([PROMPT], [RUN_ON]) == pytest.approx([logit(gold_rm, hh)], abs=1e-5)
    assert upstream([PROMPT], [RUN_ON]) == pytest.approx([logit(gold_rm, RENDERED)], abs=1e-5)
    assert abs(kit([PROMPT], [RUN_ON])[0] - upstream([PROMPT], [RUN_ON])[0]) > 1e-3


def test_the_gold_reward_follows_the_setting_in_training_and_evaluation(gold_rm):
    from sharedrep_utils.rewards import reward_function

    scorer = GoldScorer(gold_config(gold_rm), "cpu")
    for profile, text in (("paper", "scored"), ("paper-upstream", "trl")):
        assert reward_function(load_config(profile), 42, None, "gold", "cpu", gold_scorer=scorer).text == text


# --- the gold scorers' dtype --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bf16_rm(gold_rm, tmp_path_factory):
    """The tiny reward model saved in bf16, as Ray2333's helpful RM's config says."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("bf16_rm")
    AutoModelForSequenceClassification.from_pretrained(gold_rm).to(torch.bfloat16).save_pretrained(out)
    AutoTokenizer.from_pretrained(gold_rm).save_pretrained(out)
    return out


def test_gold_scores_in_fp32_by_default_whatever_the_checkpoint_says(bf16_rm):
    prompts, responses = ["\n\nHuman: How do I boil an egg?"], ["Put it in water."]
    hh = "\n\nHuman: How do I boil an egg?\n\nAssistant: Put it in water."
    default = GoldScorer(gold_config(bf16_rm), "cpu")
    assert default.scorers["helpful"].model.dtype == torch.float32
    assert default.traits(prompts, responses)["helpful"][0] == pytest.approx(logit(bf16_rm, hh), abs=1e-5)
    auto = GoldScorer(gold_config(bf16_rm, dtype="auto"), "cpu")  # transformers 5's default: the config's bf16
    assert auto.scorers["helpful"].model.dtype == torch.bfloat16
    bf16_score = auto.traits(prompts, responses)["helpful"][0]
    assert bf16_score == pytest.approx(logit(bf16_rm, hh, torch.bfloat16), abs=1e-6)
    assert GoldScorer(gold_config(bf16_rm, dtype="bfloat16"), "cpu").scorers["helpful"].model.dtype == torch.bfloat16


# --- SFT weight precision -----------------------------------------------------------------------------------


def sft_one_step(tmp_path, dtype: str):
    from trl import SFTTrainer

    from sharedrep_utils.hh_data import Example
    from sharedrep_utils.stages.sft import sft_arguments, sft_dataset

    path, tokenizer = tiny_policy(tmp_path)
    cfg = load_config("paper", {"sft.model_dtype": dtype})
    examples = [Example(str(i), "\n\nHuman: how do I boil an egg?", "Put it in water.", "No.") for i in range(4)]
    args = sft_arguments(cfg, "cpu", tmp_path / dtype, len(examples), max_steps=1, per_device_train_batch_size=4)
    trainer = SFTTrainer(model=str(path), args=args, train_dataset=sft_dataset(examples), processing_class=tokenizer)
    before = {n: p.detach().float().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    moved = sum(int((p.detach().float() != before[n]).sum()) for n, p in trainer.model.named_parameters())
    total = sum(p.numel() for p in trainer.model.parameters())
    return trainer, moved / total


def test_bf16_sft_trains_bf16_weights_and_adam_state(tmp_path):
    """Upstream's bf16 weights: AdamW's first step moves each weight by about the learning rate (2e-5), less than
    half a bf16 step for any weight over 2^-7 (about 0.008), so most weights a step should move stay put (here
    about 22% of all weights move in bf16, 71% in fp32: the rest, unused embedding rows, get no gradient)."""
    trainer, moved_bf16 = sft_one_step(tmp_path, "bfloat16")
    assert {p.dtype for p in trainer.model.parameters()} == {torch.bfloat16}
    states = [s for s in trainer.optimizer.state.values() if "exp_avg" in s]
    assert states and {s["exp_avg"].dtype for s in states} == {torch.bfloat16}
    trainer, moved_fp32 = sft_one_step(tmp_path, "float32")
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    assert moved_fp32 > 0.5 and moved_bf16 < 0.5 * moved_fp32


# --- upstream's plain prompt in evaluation ------------------------------------------------------------------


def test_evaluation_generates_from_the_plain_prompt_when_the_chat_template_is_off(tmp_path, monkeypatch):
    from sharedrep_utils.stages import evaluate

    calls = []

    class Stop(Exception):
        pass

    def recording_generate(model, tokenizer, prompts, **kwargs):
        calls.append(kwargs["chat_template"])
        raise Stop

    monkeypatch.setattr(evaluate, "require", lambda *a, **k: {"params_hash": "upstream"})
    monkeypatch.setattr(evaluate, "load_policy", lambda *a, **k: (None, None))
    monkeypatch.setattr(evaluate, "generate", recording_generate)
    for value in (True, False):
        cfg = load_config("smoke", {"run_dir": str(tmp_path / str(value)), "generation.chat_template": value})
        with pytest.raises(Stop):
            evaluate.main(cfg, None, None, "sft")
    assert calls == [True, False]
    on, off = (load_config("smoke", {"generation.chat_template": v}) for v in (True, False))
    assert evaluate.params(on, None, None, "sft") != evaluate.params(off, None, None, "sft")  # a rerun
