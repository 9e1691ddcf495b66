"""Gold scorers read prompt + completion in their own dialogue format (configured per trait), never
the policy's chat-template markup or a prompt echoed twice."""

import pytest

from sharedrep_utils.config import ConfigError, load_config
from sharedrep_utils.gold import scored_texts

HH = "{dialogue}\n\nAssistant: {response}"


def test_paper_gold_models_read_the_hh_format():
    paper = load_config("paper")
    for name in ("helpful", "harmless"):
        trait = paper.gold.traits[name]
        assert trait.model.startswith("Ray2333/")
        [text] = scored_texts(trait.text_format, ["\n\nHuman: How do I bake bread?"], ["Mix flour and water."])
        assert text == "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour and water."


def test_multi_turn_dialogue_and_a_prompt_only_format():
    prompt = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Any tips?"
    assert scored_texts(HH, [prompt], ["  Sleep well. "]) == [prompt + "\n\nAssistant: Sleep well."]
    # a scorer trained on question/answer pairs: the last human turn only
    assert scored_texts("Q: {prompt}\nA: {response}", [prompt], ["Sleep."]) == ["Q: Any tips?\nA: Sleep."]


def test_a_completion_that_runs_into_a_new_turn_is_cut():
    """A policy that keeps going ("...\n\nHuman: ...", or its chat markup) is scored on its own turn only."""
    prompt = "\n\nHuman: Capital of France?"
    texts = scored_texts(HH, [prompt, prompt], ["Paris.\n\nHuman: Capital of France?", "Paris.<|user|>\nmore"])
    assert texts == [prompt + "\n\nAssistant: Paris."] * 2
    assert all(t.count("Capital of France?") == 1 for t in texts)  # the prompt is never in twice


@pytest.mark.parametrize("bad", ["<|user|>\nCapital of France?</s>\n<|assistant|>\n", "Capital of France?"])
def test_chat_template_markup_or_a_bare_prompt_is_refused(bad):
    with pytest.raises(ValueError, match="HH dialogues"):
        scored_texts(HH, [bad], ["Paris."])


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{dialogue} {prompt} {response}", "puts the prompt in twice"),
        ("{dialogue}\n\nAssistant: {answer}", "unknown placeholder {answer}"),
        ("{dialogue}\n\nAssistant:", "must contain {response}"),
        ("{response}", "must contain {response} and one of"),
        ("{dialogue", "is not a valid template"),
    ],
)
def test_bad_gold_text_formats_stop_before_any_work(template, message):
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        load_config("paper", {"gold.traits.helpful.text_format": template})


def test_text_format_is_per_trait():
    cfg = load_config("paper", {"gold.traits.harmless.text_format": "Q: {prompt}\nA: {response}"})
    assert cfg.gold.traits["helpful"].text_format == HH
    assert cfg.gold.traits["harmless"].text_format == "Q: {prompt}\nA: {response}"
