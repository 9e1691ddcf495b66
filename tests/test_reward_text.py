"""One text per (prompt, completion), wherever it is scored (issue 14 item 4; docs/deviations.md).

The reward GRPO's trainer receives for (prompt messages, completion messages) must equal the score
evaluation reports for the same (HH prompt, completion text), for the gold reward and for a learned
reward, in the HH format (run-on turns cut) and in upstream's chat text (run-on turns kept).
"""

import numpy as np
import pytest
import tiny_backbones
import torch

from sharedrep_utils import rewards
from sharedrep_utils.config import GoldConfig, RewardModelConfig, TraitConfig
from sharedrep_utils.gold import GoldMinReward, GoldScorer, scored_texts
from sharedrep_utils.hh_data import clean_response, plain_prompt, scorer_texts, to_messages
from sharedrep_utils.reward_models import FeatureExtractor, GroupHeads, MinOverGroupsReward, save_heads

HH = "{dialogue}\n\nAssistant: {response}"
TINYLLAMA_TEMPLATE = (  # TinyLlama-Chat's rendering, as the smoke profile's template
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + "
    "eos_token + '\n' }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + "
    "eos_token + '\n' }}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    "{% endfor %}"
)
PROMPTS = ["\n\nHuman: Capital of France?", "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Any tips?"]
COMPLETIONS = [  # as TRL decodes them: a run-on "\n\nHuman:" turn, chat markup, and a plain reply
    "Paris.\n\nHuman: and Spain?",
    "Sleep well.<|user|>\nmore",
]
WEIGHTS = {"minority": {"helpful": 1.0}, "majority": {"helpful": 0.3, "harmless": 0.7}}


@pytest.fixture(scope="module")
def chat_tokenizer():
    """A policy tokenizer like TinyLlama's: <|user|> / <|assistant|> are plain text, eos is special."""
    tokenizer = tiny_backbones.bpe_tokenizer()
    tokenizer.chat_template = TINYLLAMA_TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny GPT-2 backbone and two tiny GPT-2 sequence classifiers (gold helpful, harmless)."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    root = tmp_path_factory.mktemp("text")
    backbone = tiny_backbones.build("gpt2", root / "backbone")
    gold = {}
    for seed, name in enumerate(("helpful", "harmless")):
        torch.manual_seed(seed)
        config = GPT2Config.from_pretrained(backbone, num_labels=1)
        GPT2ForSequenceClassification(config).save_pretrained(root / name)
        tiny_backbones.bpe_tokenizer().save_pretrained(root / name)
        gold[name] = root / name
    return backbone, gold


def messages(prompts, completions):
    """What TRL's GRPOTrainer hands a reward function for conversational prompts."""
    return [to_messages(p) for p in prompts], [[{"role": "assistant", "content": c}] for c in completions]


def test_the_chat_text_is_upstreams_decoded_rendering_with_run_on_turns_kept(chat_tokenizer):
    [text] = scorer_texts("chat", HH, PROMPTS[:1], COMPLETIONS[:1], chat_tokenizer)
    assert text == "<|user|>\nCapital of France?\n<|assistant|>\nParis.\n\nHuman: and Spain?"  # no eos, run-on kept
    [hh] = scorer_texts("hh", HH, PROMPTS[:1], COMPLETIONS[:1])
    assert hh == "\n\nHuman: Capital of France?\n\nAssistant: Paris."  # the RMs' model-card format, run-on cut
    with pytest.raises(ValueError, match="policy's tokenizer"):
        scorer_texts("chat", HH, PROMPTS, COMPLETIONS)


def test_upstreams_disable_chat_template_prompt():
    assert plain_prompt(PROMPTS[1]) == "Human: Hi\nAssistant: Hello!\nHuman: Any tips?"  # no trailing cue


@pytest.mark.parametrize("text", ["hh", "chat"])
def test_gold_grpo_reward_equals_the_evaluation_score(models, chat_tokenizer, text):
    _, gold_paths = models
    traits = {
        name: TraitConfig(kind="sequence_classifier", model=str(path), text_format=HH, max_length=64, batch_size=1)
        for name, path in gold_paths.items()
    }
    scorer = GoldScorer(GoldConfig(traits=traits, groups=WEIGHTS, text=text), chat_tokenizer=chat_tokenizer)
    grpo = GoldMinReward(scorer)(*messages(PROMPTS, COMPLETIONS))
    # evaluation: generate() keeps run-on turns only for the chat text; either way the same scores come out
    for completions in (COMPLETIONS, [c if text == "chat" else clean_response(c) for c in COMPLETIONS]):
        groups = scorer.groups(scorer.traits(PROMPTS, completions))
        np.testing.assert_allclose(grpo, np.min(np.stack(list(groups.values())), axis=0), rtol=1e-6)
    # and the run-on turn is scored only in the chat text
    cleaned = scorer.traits(PROMPTS, [clean_response(c) for c in COMPLETIONS])["helpful"]
    raw = scorer.traits(PROMPTS, COMPLETIONS)["helpful"]
    assert np.array_equal(cleaned, raw) is (text == "hh")
    assert scored_texts(HH, PROMPTS, COMPLETIONS, text, chat_tokenizer) == scorer_texts(
        text, HH, PROMPTS, COMPLETIONS, chat_tokenizer
    )


@pytest.mark.parametrize("text", ["hh", "chat"])
def test_learned_grpo_reward_equals_the_score_on_the_training_text(models, chat_tokenizer, tmp_path, text):
    backbone, _ = models
    rm = RewardModelConfig(backbone=str(backbone), pooling="last", max_length=64, batch_size=2, text=text)
    torch.manual_seed(0)
    heads = GroupHeads("maxmin", 16, 2).eval()
    save_heads(heads, tmp_path / "rm", ["minority", "majority"], rm, {})
    reward = MinOverGroupsReward(tmp_path / "rm", rm, chat_tokenizer=chat_tokenizer)
    grpo = reward(*messages(PROMPTS, COMPLETIONS))
    # what training featurised for these (prompt, response) pairs, through the heads
    features = FeatureExtractor(rm)(scorer_texts(text, rm.text_format, PROMPTS, COMPLETIONS, chat_tokenizer))
    with torch.no_grad():
        trained = heads(features).min(dim=1).values.numpy()
    np.testing.assert_allclose(grpo, trained, rtol=1e-5)
    np.testing.assert_allclose(grpo, reward.rewards(PROMPTS, COMPLETIONS), rtol=1e-6)
    if text == "chat":
        with pytest.raises(ValueError, match="chat text"):
            MinOverGroupsReward(tmp_path / "rm", rm)  # the chat text needs the policy's tokenizer


def test_evaluation_calls_a_reward_with_what_the_trainer_hands_it():
    assert rewards.trainer_inputs(PROMPTS, COMPLETIONS) == messages(PROMPTS, COMPLETIONS)


def test_a_response_only_reward_model_reads_the_reply_alone_in_training_and_evaluation(models, tmp_path):
    """The CPU profiles' reward models read `{response}`: the trainer's reward, the evaluation's training_reward
    and the features training used all see the cleaned reply, whatever the prompt."""
    backbone, _ = models
    rm = RewardModelConfig(
        backbone=str(backbone), pooling="mean", max_length=64, batch_size=2, text_format="{response}"
    )
    torch.manual_seed(0)
    heads = GroupHeads("maxmin", 16, 2).eval()
    save_heads(heads, tmp_path / "rm", ["minority", "majority"], rm, {})
    reward = MinOverGroupsReward(tmp_path / "rm", rm)
    evaluated = rewards.training_reward(reward, PROMPTS, COMPLETIONS)
    np.testing.assert_allclose(evaluated, reward(*messages(PROMPTS, COMPLETIONS)), rtol=1e-6)
    other_prompts = ["\n\nHuman: Something else entirely?"] * len(PROMPTS)
    np.testing.assert_allclose(rewards.training_reward(reward, other_prompts, COMPLETIONS), evaluated, rtol=1e-6)
    with torch.no_grad():
        trained = heads(FeatureExtractor(rm)([clean_response(c) for c in COMPLETIONS])).min(dim=1).values.numpy()
    np.testing.assert_allclose(evaluated, trained, rtol=1e-5)
