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
