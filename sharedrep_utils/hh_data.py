"""Anthropic HH dialogues: parsing, loading (local copy, hub, bundled fixture), dedup and splits.

One canonical form travels through the kit: `prompt` is the dialogue up to its last assistant turn
in HH's own layout ("\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: ..."), and a response is the
assistant's text alone. Chat messages for a policy come from `to_messages(prompt)`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .config import DataConfig

FIXTURE_PATH = Path(__file__).parent / "fixtures" / "hh_fixture.jsonl"
FIXTURE_WARNING = (
    "DATA WARNING: no HH data directory and no hub access, so this run used the small bundled "
    "fixture (a few dozen hand-written dialogues); its numbers say nothing about Anthropic HH."
)
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


class MalformedDialogue(ValueError):
    """An HH row that cannot be turned into (prompt, response); the message is the reason."""


@dataclass
class Example:
    prompt_id: str
    prompt: str  # HH layout, up to (not including) the final "\n\nAssistant:"
    chosen: str
    rejected: str


@dataclass
class HHData:
    train: list[Example]
    test: list[Example]
    source: str
    warning: str | None = None
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    files: dict[str, Path] = field(default_factory=dict)  # name -> local file read (hashed into manifests)


def parse_turns(text: str) -> list[tuple[str, str]]:
    """[(role, content)] of an HH dialogue; accepts a leading "\\n\\nHuman:" or a bare "Human:"."""
    if not isinstance(text, str):
        raise MalformedDialogue("not a string")
    body = text.lstrip(" \n")
    if not body.startswith("Human:"):
        raise MalformedDialogue("does not start with a Human: turn")
    pieces = _TURN.split("\n\n" + body)
    if pieces[0].strip():
        raise MalformedDialogue("text before the first turn")
    return [(_ROLES[role], content.strip()) for role, content in zip(pieces[1::2], pieces[2::2])]


def split_dialogue(text: str) -> tuple[str, str]:
    """(prompt, response): the dialogue up to its last assistant turn, and that turn's text."""
    turns = parse_turns(text)
    last = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
    if last is None:
        raise MalformedDialogue("no Assistant: turn")
    response = turns[last][1]
    if not response:
        raise MalformedDialogue("empty final assistant turn")
    prompt_turns = turns[:last]
    if not any(role == "user" and content for role, content in prompt_turns):
        raise MalformedDialogue("no non-empty Human: turn before the response")
    return format_prompt(prompt_turns), response


def format_prompt(turns: list[tuple[str, str]]) -> str:
    names = {"user": "Human", "assistant": "Assistant"}
    return "".join(f"\n\n{names[role]}: {content}" for role, content in turns)


def to_messages(prompt: str) -> list[dict[str, str]]:
    """Chat messages for a policy's chat template."""
    return [{"role": role, "content": content} for role, content in parse_turns(prompt)]


def last_user_turn(prompt: str) -> str:
    return next(content for role, content in reversed(parse_turns(prompt)) if role == "user")


def format_scored_text(template: str, prompt: str, response: str) -> str:
    """A (prompt, response) pair in a scorer's own format.

    Placeholders: {dialogue} (the HH prompt, all turns), {prompt} (its last human turn), {response} (the
    assistant's own turn: a completion that runs on into a new turn is cut there, `clean_response`).
    """
    return template.format(dialogue=prompt, prompt=last_user_turn(prompt), response=clean_response(response))


def scorer_texts(text: str, template: str, prompts: list[str], responses: list[str], tokenizer=None) -> list[str]:
    """The texts a reward model (gold or learned) reads for (HH prompt, completion as generated) pairs: the
    one place they are built, for preference data, reward training, the GRPO reward and evaluation alike.

    hh: `format_scored_text` with `template` (the Ray2333 RMs' model-card format), run-on turns cut.
    chat: upstream's text (docs/deviations.md): the policy `tokenizer`'s chat-template rendering of the prompt
    with its assistant cue, then the completion as generated (run-on turns kept), decoded without special
    tokens, as upstream's `batch_decode(whole sequence, skip_special_tokens=True)` stored it (up to
    SentencePiece whitespace at the joint).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses.")
    if text == "hh":
        return [format_scored_text(template, p, r) for p, r in zip(prompts, responses)]
    if text != "chat":
        raise ValueError(f"Scored text {text!r} is not one of hh, chat.")
    if tokenizer is None:
        raise ValueError("The chat text is the policy's chat-template rendering; pass the policy's tokenizer.")
    rendered = [
        tokenizer.apply_chat_template(to_messages(p), tokenize=False, add_generation_prompt=True) + r
        for p, r in zip(prompts, responses)
    ]
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"] if rendered else []
    return tokenizer.batch_decode(ids, skip_special_tokens=True) if ids else []


def plain_prompt(prompt: str) -> str:
    """Upstream's `--disable_chat_template` prompt: "Human: ..." / "Assistant: ..." lines joined by one newline,
    with no trailing "Assistant:" cue (its convert_messages_to_text)."""
    names = {"user": "Human", "assistant": "Assistant"}
    return "\n".join(f"{names[role]}: {content}" for role, content in parse_turns(prompt))


_TURN_MARKERS = ("<|user|>", "<|system|>", "<|assistant|>", "\n\nHuman:", "\n\nAssistant:")


def clean_response(text: str) -> str:
    """The assistant's own turn: a model that runs on into a new turn is cut where that turn starts."""
    cut = min((i for i in (text.find(m) for m in _TURN_MARKERS) if i >= 0), default=len(text))
    return text[:cut].strip()


def prompt_id(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def is_held_out(prompt: str, eval_fraction: float) -> bool:
    """Stable split by prompt hash: the same prompt lands on the same side on every machine."""
    bucket = int(hashlib.sha256(b"split:" + prompt.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < eval_fraction


class _InvalidJSON(dict):
    """Stands in for a line of a JSONL file that does not parse, so it is counted, not fatal."""


def parse_row(row: dict, cfg: DataConfig) -> Example:
    """One HH row ({"chosen", "rejected"}) as an Example, or MalformedDialogue with the reason."""
    if isinstance(row, _InvalidJSON):
        raise MalformedDialogue("not valid JSON")
    if not isinstance(row, dict) or "chosen" not in row or "rejected" not in row:
        raise MalformedDialogue("missing chosen/rejected")
    prompt, chosen = split_dialogue(row["chosen"])
    rejected_prompt, rejected = split_dialogue(row["rejected"])
    if rejected_prompt != prompt:
        raise MalformedDialogue("chosen and rejected have different prompts")
    if cfg.single_turn_only and len(parse_turns(prompt)) != 1:
        raise MalformedDialogue("multi-turn (single_turn_only is set)")
    if len(prompt) > cfg.max_prompt_chars:
        raise MalformedDialogue("prompt longer than data.max_prompt_chars")
    if max(len(chosen), len(rejected)) > cfg.max_response_chars:
        raise MalformedDialogue("response longer than data.max_response_chars")
    return Example(prompt_id(prompt), prompt, chosen, rejected)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a line that is not valid JSON becomes a row that parse_row skips and counts."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                rows.append(_InvalidJSON())
    return rows


def local_files(hh_dir: str | Path) -> list[Path]:
    root = Path(hh_dir)
    return sorted(p for p in root.rglob("*") if p.name.endswith((".jsonl", ".jsonl.gz")))


def load_hh(cfg: DataConfig, hh_dir: str | None) -> HHData:
    """HH from a local directory, else the hub, else the bundled fixture (with a loud warning)."""
    if hh_dir:
        files = local_files(hh_dir)
        if not files:
            raise FileNotFoundError(f"HH data directory {hh_dir!r} holds no *.jsonl or *.jsonl.gz files.")
        train_rows, test_rows = [], []
        for path in files:
            (train_rows if path.name.startswith("train") else test_rows).extend(read_jsonl(path))
        data = build(train_rows, test_rows, cfg, source=f"local:{hh_dir}")
        data.files = {f"hh:{p.relative_to(hh_dir).as_posix()}": p for p in files}
        return data
    if cfg.allow_hub:
        try:
            import datasets

            hub = datasets.load_dataset(cfg.hub_dataset)
            return build(list(hub["train"]), list(hub["test"]), cfg, source=f"hub:{cfg.hub_dataset}")
        except Exception as error:  # offline, no access, ...: fall through to the fixture
            if not cfg.allow_fixture:
                raise RuntimeError(
                    f"Could not load {cfg.hub_dataset!r} from the hub ({error}); set data.hh_dir or "
                    f"$SHAREDREP_HH_DIR to a local copy in the chosen/rejected layout."
                ) from error
    if not cfg.allow_fixture:
        raise RuntimeError("No HH data: set data.hh_dir or $SHAREDREP_HH_DIR, or allow the hub or the fixture.")
    warnings.warn(FIXTURE_WARNING, stacklevel=2)
    data = build([], read_jsonl(FIXTURE_PATH), cfg, source=f"fixture:{FIXTURE_PATH.name}")
    data.warning = FIXTURE_WARNING
    data.files = {f"hh:{FIXTURE_PATH.name}": FIXTURE_PATH}
    return data


def build(train_rows: list[dict], test_rows: list[dict], cfg: DataConfig, source: str) -> HHData:
    """Parse, skip malformed rows (counted by reason), dedupe by prompt, split train/held-out.

    With no train rows, a hash of each prompt sends `eval_fraction` of prompts to held-out; with a
    train file, any test prompt that also appears in train is dropped from test, so they never overlap.
    Both lists are in prompt-id order, which is stable and unrelated to file order.
    """
    skipped: Counter = Counter()

    def parse_all(rows: list[dict]) -> dict[str, Example]:
        out: dict[str, Example] = {}
        for row in rows:
            try:
                example = parse_row(row, cfg)
            except MalformedDialogue as error:
                skipped[str(error)] += 1
                continue
            if example.prompt_id in out:
                skipped["duplicate prompt"] += 1
                continue
            out[example.prompt_id] = example
        return out

    train, test = parse_all(train_rows), parse_all(test_rows)
    if not train_rows:
        pooled = test
        train = {k: v for k, v in pooled.items() if not is_held_out(v.prompt, cfg.eval_fraction)}
        test = {k: v for k, v in pooled.items() if is_held_out(v.prompt, cfg.eval_fraction)}
    else:
        for key in [k for k in test if k in train]:
            skipped["test prompt also in train"] += 1
            del test[key]
    if not train or not test:
        raise ValueError(
            f"HH data from {source} left {len(train)} train and {len(test)} held-out prompts after "
            f"skipping {dict(skipped)}; loosen data.single_turn_only or data.max_prompt_chars, or add data."
        )
    return HHData(
        train=[train[k] for k in sorted(train)],
        test=[test[k] for k in sorted(test)],
        source=source,
        skipped=skipped,
    )


def take(examples: list[Example], n: int) -> list[Example]:
    """The first n examples (0 = all, fewer when the data is smaller; stages record the count)."""
    return examples[:n] if n else examples


def take_counted(
    examples: list[Example], n: int, setting: str, what: str, seed: int | None = None, echo: bool = True
) -> tuple[list[Example], dict]:
    """The first n examples, never silently fewer: (examples, record for the stage's manifest).

    `setting` names the configuration key that asked for n (0 = all), `what` the examples ("held-out
    prompts"). With `seed`, the examples are first shuffled by a generator seeded with it (the same
    seed draws the same prompts on every machine). When the data holds fewer than asked, one line
    says so (printed unless `echo` is False, e.g. on non-main processes) and the record keeps it.
    """
    order = list(examples)
    if seed is not None:
        import numpy as np

        order = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    chosen = take(order, n)
    record = {"setting": setting, "asked": n, "available": len(examples), "used": len(chosen), "draw_seed": seed}
    record["shortfall"] = (
        f"{setting} asks for {n} {what}, but the data holds only {len(examples)}; using {len(chosen)}."
        if n and len(chosen) < n
        else None
    )
    if record["shortfall"] and echo:
        print(f"SHORTFALL: {record['shortfall']}", flush=True)
    return chosen, record


def chat_to_hh(prompts, completions, clean: bool = True) -> tuple[list[str], list[str]]:
    """TRL's conversational (prompt messages, completion messages) as (HH prompt, response text); the
    response cut at a run-on turn, or as generated with `clean=False` (the rewards: `scorer_texts` decides)."""
    tidy = clean_response if clean else (lambda text: text)
    hh_prompts, responses = [], []
    for prompt, completion in zip(prompts, completions, strict=True):
        if isinstance(prompt, str):
            hh_prompts.append(prompt)
            responses.append(tidy(completion))
            continue
        hh_prompts.append(format_prompt([(m["role"], m["content"]) for m in prompt]))
        responses.append(tidy(completion[-1]["content"]) if completion else "")
    return hh_prompts, responses
