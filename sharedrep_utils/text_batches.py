"""Length-sorted batches with dynamic padding: each batch is padded only to its own longest text."""

from __future__ import annotations

from collections.abc import Iterator


def length_sorted_batches(
    tokenizer, texts: list[str], batch_size: int, max_length: int
) -> Iterator[tuple[list[int], dict]]:
    """Yield (indices into `texts`, padded tensors) with texts tokenized once and grouped by length."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        yield batch, tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")


def max_length_batches(
    tokenizer, texts: list[str], batch_size: int, max_length: int, pad_to: int
) -> Iterator[tuple[list[int], dict]]:
    """The naive way, for the benchmark: input order, every text padded to `pad_to` tokens (the upstream
    pads to the model's whole context). Same truncation as `length_sorted_batches`, so same outputs."""
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
