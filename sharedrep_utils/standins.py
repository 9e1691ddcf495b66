"""Same-class stand-ins for the paper profile's hub models, built locally in seconds, and the dry run.

The paper profile names four hub checkpoints that cannot be downloaded here. Their stand-ins are of the
same classes, tokenizer families and on-disk formats, and differ only in size (layers, width, heads,
vocabulary), so the paper's code path runs end to end on them offline:

- gold RMs (`gold.traits.*.model`; hub: Ray2333/gpt2-large-{helpful,harmless}-reward_model):
  `GPT2ForSequenceClassification`, num_labels 1, `pad_token_id` unset, a GPT-2 byte-level BPE tokenizer
  without a pad token; different random weights;
- RM backbone (`reward_model.backbone`; hub: gpt2-large): `GPT2LMHeadModel` (AutoModel loads its `GPT2Model`),
  the same tokenizer;
- policy (`policy.model`; hub: TinyLlama/TinyLlama-1.1B-Chat-v1.0): `LlamaForCausalLM` saved in bf16 as shipped,
  8:1 grouped-query attention, a Llama BPE tokenizer with byte fallback (`<unk>` `<s>` `</s>`, no pad token)
  and TinyLlama-Chat's chat template in its tokenizer_config.json.

No tokenizer can be downloaded, so both are trained here with `tokenizers` on HH text ($SHAREDREP_HH_DIR,
else the bundled fixture). Everything is deterministic given the seed.

`dryrun_overrides` is the one place that says what the dry run changes in the paper profile: model ids,
the data location, sizes and counts; nothing else (tests/test_paper_dryrun.py checks it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURE_DIR = Path(__file__).parent / "fixtures"  # hh_data.FIXTURE_PATH's directory
STANDINS_VERSION = 1  # bump when what `build_standins` writes changes (a stale copy is then rebuilt)
ROLES = ("policy", "backbone", "gold_helpful", "gold_harmless")
GPT2_EOS = "<|endoftext|>"
LLAMA_SPECIALS = ("<unk>", "<s>", "</s>")

# TinyLlama-1.1B-Chat-v1.0's chat template (as sharedrep_utils/profiles/smoke.yaml's policy.chat_template)
TINYLLAMA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + "
    "eos_token + '\n' }}{% elif message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token + "
    "'\n' }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}"
)

# The real models' published configurations (only what differs from transformers' defaults matters here).
# shapes.py builds these at full size; the stand-ins keep everything but the sizes in STANDIN_SIZES.
TINYLLAMA_CONFIG: dict[str, Any] = {
    "vocab_size": 32000,
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "attention_bias": False,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "use_cache": True,
}
GPT2_LARGE_CONFIG: dict[str, Any] = {
    "vocab_size": 50257,
    "n_positions": 1024,
    "n_embd": 1280,
    "n_layer": 36,
    "n_head": 20,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-5,
    "bos_token_id": 50256,
    "eos_token_id": 50256,
}
STANDIN_SIZES: dict[str, dict[str, int]] = {
    # head_dim 8, 8 query heads over 1 key/value head: TinyLlama's 8:1 grouped-query ratio (32:4)
    "llama": {"vocab_size": 1024, "hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2,
              "num_attention_heads": 8, "num_key_value_heads": 1},
    "gpt2": {"vocab_size": 1024, "n_embd": 64, "n_layer": 2, "n_head": 4},
}  # fmt: skip


def training_texts(hh_dir: str | None = None, limit: int = 3000) -> tuple[list[str], str]:
    """HH dialogues (prompt + chosen response, in HH's own layout) to train the tokenizers on, and their source."""
    from .config import DataConfig
    from .hh_data import FIXTURE_PATH, build, load_hh, read_jsonl

    hh_dir = hh_dir if hh_dir is not None else os.environ.get("SHAREDREP_HH_DIR")
    if hh_dir and Path(hh_dir).is_dir():
        data = load_hh(DataConfig(single_turn_only=False, max_prompt_chars=10**6, max_response_chars=10**6), hh_dir)
        source = f"local:{hh_dir}"
    else:
        fixture = DataConfig(single_turn_only=False, allow_hub=False)
        data, source = build([], read_jsonl(FIXTURE_PATH), fixture, "fixture"), f"fixture:{FIXTURE_PATH.name}"
    examples = (data.train + data.test)[:limit]
    return [e.prompt + "\n\nAssistant: " + e.chosen for e in examples], source


def gpt2_tokenizer(texts: list[str], vocab_size: int):
    """A GPT-2 tokenizer (byte-level BPE, `<|endoftext|>` as bos, eos and unk, no pad token) trained on `texts`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # + <|endoftext|>, last, as in GPT-2 (id 50256 of 50257)
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    vocab, merges = _vocab_and_merges(bpe)
    vocab[GPT2_EOS] = len(vocab)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, add_prefix_space=False)
    tokenizer.model_max_length = 1024
    return tokenizer


def llama_tokenizer(texts: list[str], vocab_size: int, chat_template: str = TINYLLAMA_CHAT_TEMPLATE):
    """A Llama tokenizer (SentencePiece-style BPE over "▁"-marked words with byte fallback; `<unk>` `<s>` `</s>` at
    ids 0 1 2, then the 256 byte tokens `<0x00>`..`<0xFF>`; bos added, no pad token) trained on `texts`, with
    TinyLlama-Chat's chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    reserved = [*LLAMA_SPECIALS, *(f"<0x{b:02X}>" for b in range(256))]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(reserved), show_progress=False, limit_alphabet=200)
    bpe.train_from_iterator(texts, trainer=trainer)
    learned, merges = _vocab_and_merges(bpe)
    vocab = {token: i for i, token in enumerate(reserved)}
    for token in sorted(learned, key=learned.get):
        vocab.setdefault(token, len(vocab))
    tokenizer = LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False, legacy=False)
    tokenizer.chat_template = chat_template
    tokenizer.model_max_length = 2048
    return tokenizer


def _vocab_and_merges(bpe) -> tuple[dict[str, int], list[tuple[str, str]]]:
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def build_standins(out_dir: str | Path, seed: int = 0, hh_dir: str | None = None) -> dict[str, Path]:
    """Write the four stand-in checkpoints under `out_dir` ({role: path}, roles in ROLES); seconds on a CPU.

    A copy already there from the same seed and STANDINS_VERSION is reused as is.
    """
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    paths = {
        "policy": out / "TinyLlama-1.1B-Chat-v1.0",
        "backbone": out / "gpt2-large",
        "gold_helpful": out / "gpt2-large-helpful-reward_model",
        "gold_harmless": out / "gpt2-large-harmless-reward_model",
    }
    stamp = out / "standins.json"
    texts, source = training_texts(hh_dir)
    record = {"version": STANDINS_VERSION, "seed": seed, "text_source": source, "paths": {}}
    if stamp.is_file():
        old = json.loads(stamp.read_text())
        if (old.get("version"), old.get("seed"), old.get("text_source")) == (STANDINS_VERSION, seed, source) and all(
            (p / "config.json").is_file() for p in paths.values()
        ):
            return paths
    out.mkdir(parents=True, exist_ok=True)

    gpt2_tok = gpt2_tokenizer(texts, STANDIN_SIZES["gpt2"]["vocab_size"])
    eos = gpt2_tok.convert_tokens_to_ids(GPT2_EOS)
    gpt2 = {**GPT2_LARGE_CONFIG, **STANDIN_SIZES["gpt2"], "vocab_size": len(gpt2_tok), "bos_token_id": eos,
            "eos_token_id": eos}  # fmt: skip
    for offset, role in enumerate(("gold_helpful", "gold_harmless", "backbone"), start=1):
        torch.manual_seed(seed * 1000 + offset)  # a different random model per role
        if role == "backbone":  # the hub's gpt2-large is a GPT2LMHeadModel; AutoModel loads its GPT2Model
            model = GPT2LMHeadModel(GPT2Config(**gpt2))
        else:  # Ray2333's reward models: one logit, pad_token_id left unset
            model = GPT2ForSequenceClassification(GPT2Config(**gpt2, num_labels=1))
        model.save_pretrained(paths[role])
        gpt2_tok.save_pretrained(paths[role])

    llama_tok = llama_tokenizer(texts, STANDIN_SIZES["llama"]["vocab_size"])
    llama = {**TINYLLAMA_CONFIG, **STANDIN_SIZES["llama"], "vocab_size": len(llama_tok)}
    torch.manual_seed(seed * 1000)
    policy = LlamaForCausalLM(LlamaConfig(**llama)).to(torch.bfloat16)  # TinyLlama ships bf16 weights
    policy.generation_config.bos_token_id, policy.generation_config.eos_token_id = 1, 2
    policy.generation_config.max_length = 2048
    policy.save_pretrained(paths["policy"])
    llama_tok.save_pretrained(paths["policy"], save_jinja_files=False)  # template in tokenizer_config.json, as shipped

    record["paths"] = {role: str(path) for role, path in paths.items()}
    stamp.write_text(json.dumps(record, indent=2))
    return paths


# --- the dry run: the paper profile on the stand-ins ---------------------------------------------------

# Sizes and counts the dry run lowers (all else is the paper profile's); small enough for ~2 minutes on 2 cores.
DRYRUN_SIZES: dict[str, Any] = {
    "data.n_sft": 32,  # 4 SFT steps at the paper's batch of 8
    "data.n_preference_prompts": 24,
    "data.n_eval_prompts": 16,
    "generation.max_new_tokens": 16,
    "grpo.max_steps": 2,
    "grpo.max_completion_length": 16,
    "grpo.logging_steps": 1,
    "evaluation.max_new_tokens": 16,
    "sweep.seeds": [42],
    "sweep.proportions": [0.2],  # minority gets pairs with 24 prompts
    "reward_model.ks": [2],
}
# what an override may touch: model ids, the data location, sizes and counts
ALLOWED_DRYRUN_KEYS = (
    "policy.model",
    "reward_model.backbone",
    "gold.traits.*.model",
    "data.hh_dir",
    *DRYRUN_SIZES,
)


def dryrun_overrides(paths: dict[str, str | Path], hh_dir: str | None = None) -> dict[str, Any]:
    """The paper profile's overrides for a dry run on the stand-ins `paths` (from `build_standins`).

    HH data: `hh_dir`, else $SHAREDREP_HH_DIR, else the directory of the bundled fixture (a few dozen
    dialogues; the dry run proves the code path, not the numbers).
    """
    hh_dir = hh_dir or os.environ.get("SHAREDREP_HH_DIR") or None
    if not (hh_dir and Path(hh_dir).is_dir()):
        hh_dir = FIXTURE_DIR
    return {  # absolute: the notebooks run inside notebooks/
        "policy.model": str(Path(paths["policy"]).resolve()),
        "reward_model.backbone": str(Path(paths["backbone"]).resolve()),
        "gold.traits.helpful.model": str(Path(paths["gold_helpful"]).resolve()),
        "gold.traits.harmless.model": str(Path(paths["gold_harmless"]).resolve()),
        "data.hh_dir": str(Path(hh_dir).resolve()),
        **DRYRUN_SIZES,
    }


def sweep_arguments(run_dir: str | Path, overrides: dict[str, Any], profile: str = "paper") -> list[str]:
    """`sharedrep run` arguments for the paper profile with `overrides` (values as JSON, which is YAML)."""
    args = ["run", "--profile", profile, "--run-dir", str(run_dir)]
    for key, value in overrides.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    return args


def paper_dryrun(
    run_dir: str | Path,
    run: Callable[[list[str]], int],
    extra: list[str] | None = None,
    seed: int = 0,
    profile: str = "paper",
) -> int:
    """Build the stand-ins into <run_dir>/standins, then run the paper profile's sweep on them into run_dir with
    `run` (the command line's `main`: `sharedrep run --profile paper --set ...`), printing every override
    first. `extra`: more `sharedrep run` arguments (e.g. --launcher accelerate); `profile`: paper, or
    paper-upstream (every departure from the upstream code switched back). Returns the sweep's exit status."""
    run_dir = Path(run_dir).resolve()
    start = time.time()
    paths = build_standins(run_dir / "standins", seed=seed)
    print(f"[paper-dryrun] stand-ins in {run_dir / 'standins'} ({time.time() - start:.1f}s)")
    overrides = dryrun_overrides(paths)
    if Path(overrides["data.hh_dir"]).resolve() == FIXTURE_DIR.resolve():
        print("[paper-dryrun] no HH directory ($SHAREDREP_HH_DIR): the bundled fixture's few dozen dialogues")
    print(f"[paper-dryrun] profile {profile}, with only these overrides (sharedrep_utils/standins.py):")
    for key, value in overrides.items():
        print(f"[paper-dryrun]   {key} = {json.dumps(value)}")
    code = run(sweep_arguments(run_dir, overrides, profile) + list(extra or []))
    print(f"[paper-dryrun] exit status {code}, {time.time() - start:.1f}s in all")
    return code
