"""HH parsing, loading (local files, fixture fallback), dedup and the train/held-out split."""

import gzip
import json
import random
import socket
import warnings

import pytest

from sharedrep_utils import hh_data
from sharedrep_utils.config import DataConfig
from sharedrep_utils.hh_data import (
    FIXTURE_WARNING,
    MalformedDialogue,
    build,
    clean_response,
    format_scored_text,
    is_held_out,
    load_hh,
    parse_row,
    parse_turns,
    split_dialogue,
    to_messages,
)


def row(question: str, chosen: str = "a good answer", rejected: str = "a bad answer") -> dict:
    return {
        "chosen": f"\n\nHuman: {question}\n\nAssistant: {chosen}",
        "rejected": f"\n\nHuman: {question}\n\nAssistant: {rejected}",
    }


def rows(n: int, start: int = 0) -> list[dict]:
    return [row(f"question number {i}?", f"answer {i}", f"no {i}") for i in range(start, start + n)]


def write_jsonl(path, items, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in items)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text)


CFG = DataConfig(eval_fraction=0.3)


# --- the guards in conftest -------------------------------------------------------------------


def test_conftest_blocks_the_network_and_sets_offline_mode():
    import os

    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("example.com", 80), timeout=1)
    with socket.socket() as s, pytest.raises(OSError, match="blocked"):
        s.connect(("127.0.0.1", 9))
    assert os.environ["HF_HUB_OFFLINE"] == "1"


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lead", ["\n\nHuman:", "Human:"])
def test_single_turn_with_either_leading_form(lead):
    prompt, response = split_dialogue(f"{lead} How do I boil an egg?\n\nAssistant: Boil it for nine minutes.")
    assert prompt == "\n\nHuman: How do I boil an egg?"
    assert response == "Boil it for nine minutes."
    assert to_messages(prompt) == [{"role": "user", "content": "How do I boil an egg?"}]


def test_both_leading_forms_give_the_same_turns():
    body = "Human: hi\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant: fine"
    assert parse_turns(body) == parse_turns("\n\n" + body)
    assert parse_turns(body) == [
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "how are you?"),
        ("assistant", "fine"),
    ]


def test_multi_turn_prompt_keeps_earlier_turns_and_response_is_last_assistant_turn():
    text = "\n\nHuman: first q\n\nAssistant: first a\n\nHuman: second q\n\nAssistant: second a"
    prompt, response = split_dialogue(text)
    assert response == "second a"
    assert prompt == "\n\nHuman: first q\n\nAssistant: first a\n\nHuman: second q"
    assert [m["role"] for m in to_messages(prompt)] == ["user", "assistant", "user"]
    assert "second a" not in prompt


def test_empty_final_assistant_turn_is_malformed():
    with pytest.raises(MalformedDialogue, match="empty final assistant turn"):
        split_dialogue("\n\nHuman: hello?\n\nAssistant:")
    with pytest.raises(MalformedDialogue, match="empty final assistant turn"):
        split_dialogue("\n\nHuman: hello?\n\nAssistant:   ")


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ({"chosen": "\n\nAssistant: only an answer", "rejected": "\n\nAssistant: another"}, "Human"),
        ({"chosen": "\n\nHuman: only a question", "rejected": "\n\nHuman: only a question"}, "no Assistant"),
        ({"chosen": "\n\nHuman: q\n\nAssistant: a"}, "missing chosen/rejected"),
        ({"rejected": "\n\nHuman: q\n\nAssistant: a"}, "missing chosen/rejected"),
        ({"chosen": 3, "rejected": "\n\nHuman: q\n\nAssistant: a"}, "not a string"),
        ("not a dict", "missing chosen/rejected"),
        (
            {"chosen": "\n\nHuman: one\n\nAssistant: a", "rejected": "\n\nHuman: two\n\nAssistant: b"},
            "different prompts",
        ),
        ({"chosen": "\n\nHuman:\n\nAssistant: a", "rejected": "\n\nHuman:\n\nAssistant: b"}, "Human"),
    ],
)
def test_malformed_rows_raise_with_a_reason(bad_row, reason):
    with pytest.raises(MalformedDialogue, match=reason):
        parse_row(bad_row, DataConfig())


def test_single_turn_only_and_length_limits():
    multi = {
        "chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: good",
        "rejected": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: bad",
    }
    with pytest.raises(MalformedDialogue, match="multi-turn"):
        parse_row(multi, DataConfig(single_turn_only=True))
    example = parse_row(multi, DataConfig(single_turn_only=False))
    assert (example.chosen, example.rejected) == ("good", "bad")
    assert example.prompt == "\n\nHuman: a\n\nAssistant: b\n\nHuman: c"
    with pytest.raises(MalformedDialogue, match="max_prompt_chars"):
        parse_row(row("x" * 50), DataConfig(max_prompt_chars=20))
    with pytest.raises(MalformedDialogue, match="max_response_chars"):
        parse_row(row("q?", rejected="y" * 50), DataConfig(max_response_chars=20))


def test_prompt_id_is_the_same_for_the_same_prompt_only():
    a, b = parse_row(row("same?", "x", "y"), CFG), parse_row(row("same?", "z", "w"), CFG)
    c = parse_row(row("other?"), CFG)
    assert a.prompt_id == b.prompt_id != c.prompt_id


# --- build: dedup, skip counts, split ----------------------------------------------------------


def test_build_dedups_by_prompt_and_counts_skipped_rows_by_reason():
    good = rows(30)
    bad = [
        {"chosen": "\n\nHuman: q"},  # missing rejected
        {"chosen": "\n\nHuman: q\n\nAssistant:", "rejected": "\n\nHuman: q\n\nAssistant: x"},  # empty final turn
        {"chosen": "\n\nHuman: q\n\nAssistant:", "rejected": "\n\nHuman: q\n\nAssistant: y"},
        row("question number 3?", "another chosen", "another rejected"),  # duplicate prompt of good[3]
        row("question number 5?"),  # duplicate prompt of good[5]
    ]
    data = build([], good + bad, CFG, source="test")
    assert data.skipped == {"missing chosen/rejected": 1, "empty final assistant turn": 2, "duplicate prompt": 2}
    all_examples = data.train + data.test
    assert len(all_examples) == 30
    assert len({e.prompt for e in all_examples}) == 30
    kept = next(e for e in all_examples if e.prompt == "\n\nHuman: question number 3?")
    assert kept.chosen == "answer 3"  # the first row for a prompt is kept


def test_hash_split_has_no_overlap_follows_eval_fraction_and_is_stable():
    cfg = DataConfig(eval_fraction=0.25)
    items = rows(400)
    data = build([], items, cfg, source="test")
    train = {e.prompt for e in data.train}
    test = {e.prompt for e in data.test}
    assert not train & test
    assert len(train | test) == 400
    assert all(is_held_out(p, 0.25) for p in test) and not any(is_held_out(p, 0.25) for p in train)
    assert 60 <= len(test) <= 140  # 100 expected; a hash split, not an exact count
    # stable across calls and across input order
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    again = build([], shuffled, cfg, source="test")
    assert [e.prompt_id for e in again.train] == [e.prompt_id for e in data.train]
    assert [e.prompt_id for e in again.test] == [e.prompt_id for e in data.test]
    assert [e.prompt_id for e in data.train] == sorted(e.prompt_id for e in data.train)


def test_larger_eval_fraction_only_moves_prompts_to_held_out():
    small = build([], rows(200), DataConfig(eval_fraction=0.1), source="t")
    large = build([], rows(200), DataConfig(eval_fraction=0.4), source="t")
    assert {e.prompt for e in small.test} <= {e.prompt for e in large.test}
    assert len(large.test) > len(small.test)


def test_with_a_train_file_test_prompts_also_in_train_are_dropped():
    train_rows = rows(20)
    test_rows = rows(10, start=15)  # prompts 15..19 are also in train
    data = build(train_rows, test_rows, CFG, source="t")
    assert {e.prompt for e in data.train} == {f"\n\nHuman: question number {i}?" for i in range(20)}
    assert {e.prompt for e in data.test} == {f"\n\nHuman: question number {i}?" for i in range(20, 25)}
    assert data.skipped["test prompt also in train"] == 5


def test_build_refuses_an_empty_side_naming_the_source():
    with pytest.raises(ValueError, match="my-source"):
        build(rows(5), rows(5), CFG, source="my-source")  # every test prompt is in train


# --- load_hh ----------------------------------------------------------------------------------


def test_load_hh_reads_jsonl_and_gz_recursively_by_train_test_name(tmp_path):
    write_jsonl(tmp_path / "helpful-base" / "train.jsonl.gz", rows(10), gz=True)
    write_jsonl(tmp_path / "harmless-base" / "nested" / "train.jsonl", rows(10, start=10))
    write_jsonl(tmp_path / "helpful-base" / "test.jsonl.gz", rows(4, start=100), gz=True)
    write_jsonl(tmp_path / "harmless-base" / "test.jsonl", rows(4, start=200) + rows(2, start=0))
    (tmp_path / "README.md").write_text("not data")
    (tmp_path / "notes.json").write_text(json.dumps(row("should be ignored")))
    data = load_hh(CFG, str(tmp_path))
    assert data.source == f"local:{tmp_path}"
    assert data.warning is None
    assert {e.prompt for e in data.train} == {f"\n\nHuman: question number {i}?" for i in range(20)}
    expected_test = {f"\n\nHuman: question number {i}?" for i in [*range(100, 104), *range(200, 204)]}
    assert {e.prompt for e in data.test} == expected_test
    assert data.skipped["test prompt also in train"] == 2


def test_load_hh_with_only_test_files_uses_the_hash_split(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", rows(60))
    data = load_hh(CFG, str(tmp_path))
    prompts = [e.prompt for e in data.train + data.test]
    assert len(prompts) == len(set(prompts)) == 60
    assert all(is_held_out(e.prompt, CFG.eval_fraction) for e in data.test)


def test_load_hh_empty_directory_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_hh(CFG, str(tmp_path))


def test_fixture_fallback_is_loudly_labelled():
    cfg = DataConfig(allow_hub=False, allow_fixture=True)
    with pytest.warns(UserWarning, match="DATA WARNING"):
        data = load_hh(cfg, None)
    assert data.warning == FIXTURE_WARNING and "fixture" in data.warning
    assert data.source.startswith("fixture:")
    assert data.train and data.test
    assert not {e.prompt for e in data.train} & {e.prompt for e in data.test}
    fixture_prompts = {split_dialogue(r["chosen"])[0] for r in hh_data.read_jsonl(hh_data.FIXTURE_PATH)}
    assert {e.prompt for e in data.train + data.test} <= fixture_prompts


def test_no_data_source_allowed_is_an_error():
    with pytest.raises(RuntimeError, match="hh_dir"):
        load_hh(DataConfig(allow_hub=False, allow_fixture=False), None)


def test_hub_failure_without_fixture_names_the_dataset(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match="Anthropic/hh-rlhf"):
        load_hh(DataConfig(allow_hub=True, allow_fixture=False), None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_hh(DataConfig(allow_hub=True, allow_fixture=True), None)
    assert data.source.startswith("fixture:")
    assert any("DATA WARNING" in str(w.message) for w in caught)


# --- scorer text and response cleaning --------------------------------------------------------


def test_format_scored_text_placeholders():
    prompt = "\n\nHuman: first q\n\nAssistant: first a\n\nHuman: last q"
    text = format_scored_text("D={dialogue}|P={prompt}|R={response}", prompt, "  the answer \n")
    assert text == f"D={prompt}|P=last q|R=the answer"
    hh = format_scored_text("{dialogue}\n\nAssistant: {response}", prompt, "ok")
    assert split_dialogue(hh) == (prompt, "ok")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Sure, here it is.  ", "Sure, here it is."),
        ("Answer.\n\nHuman: and now I ask more", "Answer."),
        ("Answer.\n\nAssistant: talking to myself", "Answer."),
        ("Answer.<|user|>\nnext question", "Answer."),
        ("Answer.</s>\n<|assistant|>\nmore", "Answer.</s>"),
        ("first <|system|> then\n\nHuman: later", "first"),
        ("Human: inline mention is fine", "Human: inline mention is fine"),
        ("", ""),
    ],
)
def test_clean_response_cuts_at_the_first_new_turn(raw, clean):
    assert clean_response(raw) == clean


def test_scored_text_in_hh_format_reproduces_the_original_dialogue():
    original = "\n\nHuman: first q\n\nAssistant: first a\n\nHuman: last q\n\nAssistant: the answer"
    prompt, response = split_dialogue(original)
    assert format_scored_text("{dialogue}\n\nAssistant: {response}", prompt, response) == original


def test_chosen_and_rejected_with_different_leading_forms_share_a_prompt():
    example = parse_row({"chosen": "\n\nHuman: q?\n\nAssistant: yes", "rejected": "Human: q?\n\nAssistant: no"}, CFG)
    assert (example.prompt, example.chosen, example.rejected) == ("\n\nHuman: q?", "yes", "no")


def test_chat_to_hh_turns_trl_messages_into_hh_prompts_and_clean_responses():
    from sharedrep_utils.hh_data import chat_to_hh

    hh_prompt = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how are you?"
    prompts = [to_messages(hh_prompt), "\n\nHuman: plain text prompt", to_messages("\n\nHuman: q")]
    completions = [
        [{"role": "assistant", "content": " fine, thanks \n\nHuman: and you?"}],
        "a plain completion<|user|>next",
        [],
    ]
    out_prompts, responses = chat_to_hh(prompts, completions)
    assert out_prompts == [hh_prompt, "\n\nHuman: plain text prompt", "\n\nHuman: q"]
    assert responses == ["fine, thanks", "a plain completion", ""]
    with pytest.raises(ValueError):
        chat_to_hh(prompts, completions[:2])  # lengths must match
