"""Gold scorers (one per trait) and group scores (weights · traits).

Paper profile: the Ray2333 GPT-2-large helpful and harmless reward models, reading each dialogue in
the HH format they were trained on (with `gold.text: chat`, upstream's decoded chat-template text).
CPU profiles (smoke, small): scorers that packages ship, none of them the reward models' backbone: 1 − P(offensive)
from alt-profanity-check and the response's tone from VADER (upbeat: compound sentiment; neutral: 1 − |compound|).
Prompt–response relevance in a sentence-embedding space (`embedding_relevance`) is a kind a profile can choose.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .config import GoldConfig, TraitConfig
from .hh_data import chat_to_hh, clean_response, last_user_turn, scorer_texts
from .hub import loading, resolve_model
from .text_batches import length_sorted_batches

Scorer = Callable[[list[str], list[str]], np.ndarray]


def _sequence_classifier(trait: TraitConfig, device: str, text: str = "hh", chat_tokenizer=None) -> Scorer:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(trait.model)
    with loading(trait.model):
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
    if tokenizer.pad_token is None:  # GPT-2 reward models: pad with eos, the model finds the last real token
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    tokenizer.padding_side = "right"

    @torch.inference_mode()
    def score(prompts: list[str], responses: list[str]) -> np.ndarray:
        texts = scored_texts(trait.text_format, prompts, responses, text, chat_tokenizer)
        out = np.zeros(len(texts))
        for idx, batch in length_sorted_batches(tokenizer, texts, trait.batch_size, trait.max_length):
            logits = model(**batch.to(device)).logits[:, 0]
            out[idx] = logits.float().cpu().numpy()
        return out

    return score


_CHAT_MARKUP = ("<|user|>", "<|assistant|>", "<|system|>", "<|im_start|>", "[INST]")


def scored_texts(
    template: str, prompts: list[str], responses: list[str], text: str = "hh", chat_tokenizer=None
) -> list[str]:
    """Prompt + completion as a gold scorer reads it (`hh_data.scorer_texts`): in its own format (its
    `text_format`), the response cut where a model runs on into a new turn, so the prompt is never scored
    twice; or, with text="chat", upstream's decoded chat-template text (the policy's `chat_tokenizer`).

    Prompts must be HH dialogues (`\n\nHuman: ...`), not a policy's chat-template rendering.
    """
    for prompt in prompts:
        if not prompt.startswith("\n\nHuman:") or any(m in prompt for m in _CHAT_MARKUP):
            raise ValueError(f"Gold scorers read HH dialogues starting with '\\n\\nHuman:'; got {prompt[:60]!r}.")
    return scorer_texts(text, template, prompts, responses, chat_tokenizer)


def _embedding_relevance(trait: TraitConfig, device: str) -> Scorer:
    """Cosine similarity of the last human turn and the response, in a sentence-embedding space."""
    from sentence_transformers import SentenceTransformer

    with loading(trait.model):
        model = SentenceTransformer(resolve_model(trait.model), device=device)
    model.max_seq_length = trait.max_length

    def score(prompts: list[str], responses: list[str]) -> np.ndarray:
        questions = [last_user_turn(p) for p in prompts]
        kwargs = {"batch_size": trait.batch_size, "normalize_embeddings": True, "convert_to_numpy": True}
        q = model.encode(questions, **kwargs)
        r = model.encode([x if x.strip() else " " for x in responses], **kwargs)
        return (q * r).sum(axis=1).astype(np.float64)

    return score


def _non_offensive(trait: TraitConfig, device: str) -> Scorer:
    """1 − P(offensive) of the response, from alt-profanity-check's shipped classifier."""
    from profanity_check import predict_prob

    def score(prompts: list[str], responses: list[str]) -> np.ndarray:
        return 1.0 - np.asarray(predict_prob(list(responses)), dtype=np.float64)

    return score


def _sentiment(trait: TraitConfig, device: str) -> Scorer:
    """VADER compound sentiment of the response, in [-1, 1]."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()

    def score(prompts: list[str], responses: list[str]) -> np.ndarray:
        return np.array([analyzer.polarity_scores(r)["compound"] for r in responses], dtype=np.float64)

    return score


def _neutral_tone(trait: TraitConfig, device: str) -> Scorer:
    """1 − |VADER compound| of the response, in [0, 1]: highest for a matter-of-fact tone, neither upbeat
    nor gloomy (the CPU profiles' minority prefers it where the majority prefers an upbeat one)."""
    sentiment = _sentiment(trait, device)

    def score(prompts: list[str], responses: list[str]) -> np.ndarray:
        return 1.0 - np.abs(sentiment(prompts, responses))

    return score


SCORERS: dict[str, Callable[[TraitConfig, str], Scorer]] = {  # one per config.TRAIT_KINDS
    "sequence_classifier": _sequence_classifier,
    "embedding_relevance": _embedding_relevance,
    "non_offensive": _non_offensive,
    "sentiment": _sentiment,
    "neutral_tone": _neutral_tone,
}


READS_TEXT = ("sequence_classifier",)  # kinds that read prompt + completion as one text: gold.text applies


class GoldScorer:
    """All traits of a profile, each model loaded once. `chat_tokenizer`: the policy's tokenizer, needed
    with `gold.text: chat` (the text is its chat-template rendering)."""

    def __init__(self, gold: GoldConfig, device: str = "cpu", chat_tokenizer=None):
        if gold.text == "chat" and chat_tokenizer is None:
            raise ValueError("gold.text is chat: GoldScorer needs the policy's tokenizer (chat_tokenizer=...).")
        self.gold = gold
        text = {"text": gold.text, "chat_tokenizer": chat_tokenizer}
        self.scorers = {
            name: SCORERS[t.kind](t, device, **(text if t.kind in READS_TEXT else {}))
            for name, t in gold.traits.items()
        }

    def traits(self, prompts: list[str], responses: list[str]) -> dict[str, np.ndarray]:
        """Every trait's scores for completions as generated; with gold.text hh each scorer reads the
        assistant's own turn (run-on turns cut, here once for all), with chat the completion as generated."""
        if self.gold.text == "hh":
            responses = [clean_response(r) for r in responses]
        return {name: scorer(prompts, responses) for name, scorer in self.scorers.items()}

    def groups(self, traits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return group_scores(traits, self.gold.groups)


def group_scores(traits: dict[str, np.ndarray], groups: dict[str, dict[str, float]]) -> dict[str, np.ndarray]:
    """Each group's score: its weights · the gold traits."""
    return {
        group: sum(weight * np.asarray(traits[trait]) for trait, weight in weights.items())
        for group, weights in groups.items()
    }


class GoldMinReward:
    """GRPO reward for the gold (oracle) policy: min over groups of the gold group scores."""

    __name__ = "gold_min_over_groups"

    def __init__(self, scorer: GoldScorer):
        self.scorer = scorer

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        hh_prompts, responses = chat_to_hh(prompts, completions, clean=False)  # traits() cleans for hh
        groups = self.scorer.groups(self.scorer.traits(hh_prompts, responses))
        return np.min(np.stack(list(groups.values())), axis=0).tolist()
