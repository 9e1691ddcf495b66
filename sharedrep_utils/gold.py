"""Gold scorers (one per trait) and group scores (weights · traits).

Paper profile: the Ray2333 GPT-2-large helpful and harmless reward models, reading each dialogue in
the HH format they were trained on (with `gold.text: chat`, upstream's decoded chat-template text).
CPU profiles (smoke, small): scorers that packages ship, none of them the reward models' backbone: 1 − P(offensive)
from alt-profanity-check and the response's tone from VADER (upbeat: compound sentiment; neutral: 1 − |compound|);
the traits profile adds brevity (`concise`: 1 − words / cap, 0 when empty).
Prompt–response relevance in a sentence-embedding space (`embedding_relevance`) is a kind a profile can choose.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .config import GOLD_REWARD_TEXTS, GoldConfig, TraitConfig
from .hh_data import chat_to_hh, clean_response, last_user_turn, scorer_texts
from .hub import loading, resolve_model
from .text_batches import length_sorted_batches

Scorer = Callable[[list[str], list[str]], np.ndarray]


class SequenceClassifier:
    """A reward model with one logit (Ray2333's GPT-2 RMs): scores (prompt, completion) pairs in the text
    `gold.text` names, or texts already built (`score_texts`: the gold policy's GRPO reward with
    `grpo.gold_reward_text: trl`). `dtype`: float32 (upstream's precision), bfloat16, float16 or auto (the
    checkpoint config's, which transformers 5 otherwise picks: bf16 for the helpful RM)."""

    def __init__(self, trait: TraitConfig, device: str, text: str = "hh", chat_tokenizer=None, dtype: str = "float32"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model(trait.model)
        with loading(trait.model):
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
            self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch_dtype).to(device).eval()
        if self.tokenizer.pad_token is None:  # GPT-2 reward models: pad with eos, the model finds the last real token
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.padding_side = "right"
        self.trait, self.device, self.text, self.chat_tokenizer = trait, device, text, chat_tokenizer

    def __call__(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        texts = scored_texts(self.trait.text_format, prompts, responses, self.text, self.chat_tokenizer)
        return self.score_texts(texts)

    @torch.inference_mode()
    def score_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros(len(texts))
        for idx, batch in length_sorted_batches(self.tokenizer, texts, self.trait.batch_size, self.trait.max_length):
            logits = self.model(**batch.to(self.device)).logits[:, 0]
            out[idx] = logits.float().cpu().numpy()
        return out


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


def _concise(trait: TraitConfig, device: str) -> Scorer:
    """Brevity of the response, in [0, 1]: 1 − words / `max_length` (0 from `max_length` words on), as the
    paper's IMDb conciseness rewards short reviews; an empty response scores 0, since it says nothing."""
    cap = trait.max_length

    def score(prompts: list[str], responses: list[str]) -> np.ndarray:
        words = np.array([len(r.split()) for r in responses], dtype=np.float64)
        return np.where(words > 0, 1.0 - np.minimum(words, cap) / cap, 0.0)

    return score


SCORERS: dict[str, Callable[[TraitConfig, str], Scorer]] = {  # one per config.TRAIT_KINDS
    "sequence_classifier": SequenceClassifier,
    "embedding_relevance": _embedding_relevance,
    "non_offensive": _non_offensive,
    "sentiment": _sentiment,
    "neutral_tone": _neutral_tone,
    "concise": _concise,
}


READS_TEXT = ("sequence_classifier",)  # kinds that read prompt + completion as one text: gold.text, gold.dtype apply


class GoldScorer:
    """All traits of a profile, each model loaded once. `chat_tokenizer`: the policy's tokenizer, needed
    with `gold.text: chat` (the text is its chat-template rendering)."""

    def __init__(self, gold: GoldConfig, device: str = "cpu", chat_tokenizer=None):
        if gold.text == "chat" and chat_tokenizer is None:
            raise ValueError("gold.text is chat: GoldScorer needs the policy's tokenizer (chat_tokenizer=...).")
        self.gold = gold
        text = {"text": gold.text, "chat_tokenizer": chat_tokenizer, "dtype": gold.dtype}
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

    def trl_traits(self, prompts: list[list[dict]], completions: list[list[dict]]) -> dict[str, np.ndarray]:
        """Every trait's scores for TRL's conversational (prompt, completion) messages as upstream's gold GRPO
        reward read them: each reward model scores `trl_reward_texts` (a trait that reads no joint text, none
        of them upstream's, scores the gold.text way)."""
        hh_prompts, responses = chat_to_hh(prompts, completions, clean=self.gold.text == "hh")  # as traits() reads them
        return {
            name: scorer.score_texts(trl_reward_texts(prompts, completions, scorer.tokenizer))
            if isinstance(scorer, SequenceClassifier)
            else scorer(hh_prompts, responses)
            for name, scorer in self.scorers.items()
        }

    def groups(self, traits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return group_scores(traits, self.gold.groups)


def group_scores(traits: dict[str, np.ndarray], groups: dict[str, dict[str, float]]) -> dict[str, np.ndarray]:
    """Each group's score: its weights · the gold traits."""
    return {
        group: sum(weight * np.asarray(traits[trait]) for trait, weight in weights.items())
        for group, weights in groups.items()
    }


# Upstream's CHAT_TEMPLATE (grpo_training/gold_grpo_training.py:11-27) as transformers renders it: its Jinja
# indentation survives as four spaces before each line, `</s>` is literal text, and 4 spaces end the text.
UPSTREAM_REWARD_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] in ('user', 'assistant') %}"
    "{{ '    <|' + message['role'] + '|>\\n    ' + message['content'] + '</s>\\n' }}{% endif %}{% endfor %}"
    "{% if messages[-1]['role'] != 'assistant' %}{{ '    <|assistant|>\\n' }}{% endif %}{{ '    ' }}"
)


def trl_reward_texts(prompts: list[list[dict]], completions: list[list[dict]], tokenizer) -> list[str]:
    """The text upstream's gold GRPO reward scored: TRL 0.19.1 joins each prompt's messages and its completion
    message (decoded without special tokens, run-on turns kept) and renders them with the reward tokenizer's
    chat template, upstream's (TRL `trainer/grpo_trainer.py`, `_calculate_rewards` for a model reward)."""
    return [
        tokenizer.apply_chat_template(list(p) + list(c), chat_template=UPSTREAM_REWARD_TEMPLATE, tokenize=False)
        for p, c in zip(prompts, completions, strict=True)
    ]


class GoldMinReward:
    """GRPO reward for the gold (oracle) policy: min over groups of the gold group scores. `text`: scored (the
    gold scoring text, `gold.text`) or trl (upstream's TRL rendering, `GoldScorer.trl_traits`)."""

    __name__ = "gold_min_over_groups"

    def __init__(self, scorer: GoldScorer, text: str = "scored"):
        if text not in GOLD_REWARD_TEXTS:
            raise ValueError(f"Gold reward text {text!r} is not one of {', '.join(GOLD_REWARD_TEXTS)}.")
        self.scorer, self.text = scorer, text

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        if self.text == "trl":
            traits = self.scorer.trl_traits(prompts, completions)
        else:
            hh_prompts, responses = chat_to_hh(prompts, completions, clean=False)  # traits() cleans for hh
            traits = self.scorer.traits(hh_prompts, responses)
        groups = self.scorer.groups(traits)
        return np.min(np.stack(list(groups.values())), axis=0).tolist()
