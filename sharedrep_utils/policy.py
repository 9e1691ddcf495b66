"""Chat policies: loading (hub id or local path), the smoke profile's locally built tiny Llama, and
batched generation from chat prompts.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import Config, PolicyConfig
from .hh_data import clean_response, plain_prompt, to_messages
from .hub import loading

TINY = "build:tiny-llama"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>"]


def pick_device(cfg: Config) -> str:
    """cpu or cuda; under a multi-GPU `accelerate launch`, this process's own GPU (cuda:<local rank>)."""
    from .distributed import device

    if cfg.device == "auto":
        return device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device is cuda but torch sees no GPU; set device: cpu or auto.")
    return device(cfg.device)


def build_tiny_policy(policy: PolicyConfig, texts: list[str], out_dir: Path, seed: int) -> Path:
    """A randomly initialised Llama and a byte-level BPE tokenizer trained on `texts`, saved to out_dir.

    The tokenizer is a real one (HF tokenizers BPE, byte-level, so decoding round-trips any text),
    trained here because no causal-LM tokenizer ships offline; the model is random until SFT.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if not policy.chat_template:
        raise ValueError("policy.chat_template must be set for a locally built policy.")
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=policy.tiny.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    tokenizer.chat_template = policy.chat_template
    tiny = policy.tiny
    torch.manual_seed(seed)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=tiny.hidden_size,
            intermediate_size=tiny.intermediate_size,
            num_hidden_layers=tiny.num_hidden_layers,
            num_attention_heads=tiny.num_attention_heads,
            num_key_value_heads=tiny.num_attention_heads,
            max_position_embeddings=tiny.max_position_embeddings,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
        )
    )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def load_tokenizer(path: str | Path, policy: PolicyConfig):
    from transformers import AutoTokenizer

    with loading(str(path)):
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=policy.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        if not policy.chat_template:
            raise ValueError(f"Tokenizer of {path} has no chat template; set policy.chat_template.")
        tokenizer.chat_template = policy.chat_template
    return tokenizer


def load_policy(path: str | Path, policy: PolicyConfig, device: str):
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if str(device).startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    with loading(str(path)):
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=dtype, trust_remote_code=policy.trust_remote_code
        ).to(device)
    model.eval()
    # TinyLlama-Chat ships generation_config max_length 2048: with max_new_tokens every generate() call
    # (one per batch) would log that both are set; max_new_tokens is what the kit means
    model.generation_config.max_length = None
    return model, load_tokenizer(path, policy)


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    do_sample: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    num_return_sequences: int = 1,
    seed: int = 0,
    chat_template: bool = True,
    keep_run_on: bool = False,
) -> list[list[str]]:
    """Responses for HH prompts: for each prompt a list of `num_return_sequences` strings.

    Prompts are rendered with the policy's chat template (or, with chat_template=False, as upstream's
    `--disable_chat_template` plain text, tokenized with the tokenizer's own special tokens as it did),
    sorted by length and batched with left padding (only as much as each batch needs); the output keeps
    the input order. Sampling draws from a generator seeded per batch, so the same seed gives the same
    responses; top_k None or 0 samples without a top-k cut. A response is cut where the model runs on into
    a new turn, or kept as generated with keep_run_on (special tokens skipped, as upstream decoded).
    """
    if chat_template:
        rendered = [
            tokenizer.apply_chat_template(to_messages(p), tokenize=False, add_generation_prompt=True) for p in prompts
        ]
    else:
        rendered = [plain_prompt(p) for p in prompts]
    encoded = [tokenizer(text, add_special_tokens=not chat_template)["input_ids"] for text in rendered]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    outputs: list[list[str]] = [[] for _ in prompts]
    tokenizer.padding_side = "left"
    device = model.device
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        inputs = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt").to(device)
        torch.manual_seed(seed + start)
        generated = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature if do_sample else None,
            top_p=top_p if do_sample else None,
            top_k=top_k if do_sample and top_k else None,  # None: no top-k (transformers' own default is 50)
            num_return_sequences=num_return_sequences,
            pad_token_id=tokenizer.pad_token_id,
        )
        texts = tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        for j, i in enumerate(batch):
            own = texts[j * num_return_sequences : (j + 1) * num_return_sequences]
            outputs[i] = own if keep_run_on else [clean_response(t) for t in own]
    return outputs
