"""The naive (upstream) ways of the kit's work, for the benchmark only: padding to the model's whole context,
texts in input order, a backbone pass per batch, per epoch, per head. Each gives the same numbers as the kit's
way (tests check it); only the cost differs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..config import Config, TraitConfig
from ..hh_data import clean_response, format_scored_text, last_user_turn, to_messages


def model_context(tokenizer, model) -> int:
    """The longest input the model takes: what the upstream pads every text to."""
    config = model.config
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None
    candidates = [x for x in (positions, limit) if x]
    if not candidates:
        raise ValueError(f"Cannot tell the context length of {type(model).__name__}; it sets no position limit.")
    return min(candidates)


def max_length_batches(
    tokenizer, texts: list[str], batch_size: int, max_length: int, pad_to: int
) -> Iterator[tuple[list[int], dict]]:
    """Input order, every text padded to `pad_to` tokens (the upstream pads to the model's whole context).
    Same truncation as `text_batches.length_sorted_batches`, so same outputs."""
    if pad_to < max_length:
        raise ValueError(f"pad_to={pad_to} is below max_length={max_length}; padding must not truncate.")
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    for start in range(0, len(texts), batch_size):
        batch = list(range(start, min(start + batch_size, len(texts))))
        yield (
            batch,
            tokenizer.pad(
                {"input_ids": [encoded[i] for i in batch]}, padding="max_length", max_length=pad_to, return_tensors="pt"
            ),
        )


def padded_tokens(tokenizer, texts: list[str], batch_size: int, max_length: int) -> dict[str, int]:
    """Token counts for a reader's throughput: real tokens, and tokens fed to the model with dynamic padding."""
    lengths = sorted(len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"])
    padded = sum(
        max(lengths[s : s + batch_size]) * len(lengths[s : s + batch_size]) for s in range(0, len(lengths), batch_size)
    )
    return {"texts": len(texts), "real_tokens": sum(lengths), "dynamic_padded_tokens": padded}


# ---------------------------------------------------------------- scoring


def naive_features(extractor, texts: list[str], pad_to: int) -> torch.Tensor:
    """FeatureExtractor's work done the upstream's way: input order, every text padded to the context."""
    from ..reward_models import backbone_inputs, pool

    rm = extractor.rm
    out = torch.zeros(len(texts), extractor.dim)
    with torch.inference_mode():
        for idx, batch in max_length_batches(extractor.tokenizer, texts, rm.batch_size, rm.max_length, pad_to):
            batch = batch.to(extractor.device)
            inputs = backbone_inputs(extractor.model, batch["input_ids"], batch["attention_mask"])
            hidden = extractor.model(**inputs).last_hidden_state
            out[idx] = pool(hidden, batch["attention_mask"], rm.pooling).float().cpu()
    return out


def naive_gold_scorers(cfg: Config, device: str) -> dict[str, Callable]:
    """Each trait scored as the upstream would: transformer traits padded to the model's context."""
    from ..gold import SCORERS
    from ..hub import resolve_model

    scorers = {}
    for name, trait in cfg.gold.traits.items():
        if trait.kind == "embedding_relevance":
            scorers[name] = _naive_relevance(trait, device)
        elif trait.kind == "sequence_classifier":
            scorers[name] = _naive_classifier(trait, device, resolve_model(trait.model))
        else:  # no padding involved (a lexicon, a linear classifier): the same call both ways
            scorers[name] = SCORERS[trait.kind](trait, device)
    return scorers


def _naive_relevance(trait: TraitConfig, device: str) -> Callable:
    from sentence_transformers import SentenceTransformer

    from ..hub import resolve_model
    from ..reward_models import pool

    model = SentenceTransformer(resolve_model(trait.model), device=device)
    backbone, tokenizer = model[0].auto_model.eval(), model.tokenizer
    pad_to = max(model_context(tokenizer, backbone), trait.max_length)

    @torch.inference_mode()
    def encode(texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), backbone.config.hidden_size)
        for idx, batch in max_length_batches(tokenizer, texts, trait.batch_size, trait.max_length, pad_to):
            batch = batch.to(device)
            out[idx] = pool(backbone(**batch).last_hidden_state, batch["attention_mask"], "mean").float().cpu()
        return torch.nn.functional.normalize(out, dim=1)

    def score(prompts: list[str], responses: list[str]) -> np.ndarray:
        q = encode([last_user_turn(p) for p in prompts])
        r = encode([x if x.strip() else " " for x in responses])
        return (q * r).sum(dim=1).double().numpy()

    score.pad_to, score.tokenizer = pad_to, tokenizer  # type: ignore[attr-defined]
    return score


def _naive_classifier(trait: TraitConfig, device: str, path: str) -> Callable:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    tokenizer.padding_side = "right"
    pad_to = max(model_context(tokenizer, model), trait.max_length)

    @torch.inference_mode()
    def score(prompts: list[str], responses: list[str]) -> np.ndarray:
        texts = [format_scored_text(trait.text_format, p, r) for p, r in zip(prompts, responses, strict=True)]
        out = np.zeros(len(texts))
        for idx, batch in max_length_batches(tokenizer, texts, trait.batch_size, trait.max_length, pad_to):
            out[idx] = model(**batch.to(device)).logits[:, 0].float().cpu().numpy()
        return out

    score.pad_to, score.tokenizer = pad_to, tokenizer  # type: ignore[attr-defined]
    return score


# ---------------------------------------------------------------- reward-model training


def naive_train_heads(
    extractor, texts_c: list[str], texts_r: list[str], group_ids, method, k, n_groups, hp, seed, max_batches: int
) -> int:
    """train_heads without the cache: the backbone runs on every batch's texts, every epoch. Stops after
    `max_batches` batches (the benchmark extrapolates); returns how many it ran."""
    from ..reward_models import GroupHeads, pair_loss

    torch.manual_seed(seed)
    heads = GroupHeads(method, extractor.dim, n_groups, k, simplex=hp.simplex_mixing)
    optimizer = torch.optim.Adam(heads.parameters(), lr=hp.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    done = 0
    for _ in range(hp.num_epochs):
        order = torch.randperm(len(group_ids), generator=generator)
        for start in range(0, len(order), hp.batch_size):
            if done == max_batches:
                return done
            done += 1
            idx = order[start : start + hp.batch_size].tolist()
            chosen = extractor([texts_c[i] for i in idx]).clone()  # out of inference mode, for autograd
            rejected = extractor([texts_r[i] for i in idx]).clone()
            loss = pair_loss(heads, chosen, rejected, group_ids[idx], hp.tanh, hp.center_rewards_coefficient)
            optimizer.zero_grad()
            loss.backward()
            if getattr(hp, "max_grad_norm", 0) > 0:
                torch.nn.utils.clip_grad_norm_(heads.parameters(), hp.max_grad_norm)
            optimizer.step()
    return done


# ---------------------------------------------------------------- GRPO reward and generation


def naive_min_over_groups(heads, extractor, texts: list[str], groups: int) -> list[float]:
    """Min over group heads with one backbone pass per head (the upstream scores each group's model apart)."""
    with torch.no_grad():
        per_head = [heads(extractor(texts))[:, g] for g in range(groups)]
    return torch.stack(per_head).min(dim=0).values.tolist()


def naive_generate(
    model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, pad_to: int
) -> list[str]:
    """Greedy generation the upstream's way: input order, every prompt left-padded to `pad_to` tokens."""
    rendered = [
        tokenizer.apply_chat_template(to_messages(p), tokenize=False, add_generation_prompt=True) for p in prompts
    ]
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in rendered]
    tokenizer.padding_side = "left"
    out = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            ids = encoded[start : start + batch_size]
            width = max(pad_to, *(len(x) for x in ids))
            inputs = tokenizer.pad({"input_ids": ids}, padding="max_length", max_length=width, return_tensors="pt")
            generated = model.generate(
                **inputs.to(model.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
            )
            texts = tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            out += [clean_response(t) for t in texts]
    return out
