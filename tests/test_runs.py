"""Stage outputs: manifest written last and atomically, all-or-nothing directories, skip on matching params."""

import json

import pytest

from sharedrep_utils import runs
from sharedrep_utils.runs import (
    MANIFEST,
    is_done,
    manifest_path,
    params_hash,
    read_manifest,
    require,
    stage_output,
)

PARAMS = {"lr": 0.1, "seed": 3, "methods": ["maxmin", "sharedrep"]}


def leftovers(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_directory_stage_moves_into_place_with_manifest_written_last(tmp_path, monkeypatch):
    stage = tmp_path / "seed1" / "prop0.1" / "preferences"
    seen = {}
    real_write = runs._write_atomic

    def spy(path, text):
        # at the moment the manifest is written: the work is complete and not yet visible
        seen["manifest_at"] = path
        seen["files_then"] = sorted(p.name for p in path.parent.iterdir())
        seen["stage_existed"] = stage.exists()
        real_write(path, text)

    monkeypatch.setattr(runs, "_write_atomic", spy)
    with stage_output(stage, "preferences", PARAMS, seed=1) as out:
        partial = out["path"]
        assert partial.is_dir() and partial != stage
        assert not stage.exists()  # nothing visible while the stage runs
        (partial / "pairs.parquet").write_bytes(b"data")
        (partial / "sub").mkdir()
        (partial / "sub" / "x.txt").write_text("x")
        out["extra"]["n_pairs"] = 12
    assert seen["manifest_at"].parent == partial and seen["manifest_at"].name == MANIFEST
    assert {"pairs.parquet", "sub"} <= set(seen["files_then"])
    assert not seen["stage_existed"]
    assert (stage / "pairs.parquet").read_bytes() == b"data"
    assert (stage / "sub" / "x.txt").read_text() == "x"
    manifest = json.loads((stage / MANIFEST).read_text())
    assert manifest["stage"] == "preferences"
    assert manifest["params"] == PARAMS and manifest["params_hash"] == params_hash(PARAMS)
    assert manifest["seed"] == 1 and manifest["n_pairs"] == 12
    assert "python" in manifest["versions"]
    assert not partial.exists()
    assert leftovers(stage.parent) == []
    assert not [p for p in stage.iterdir() if ".tmp" in p.name]


def test_an_error_leaves_no_partial_directory_and_no_stage(tmp_path):
    stage = tmp_path / "rm"
    with pytest.raises(RuntimeError, match="boom"):
        with stage_output(stage, "rm", PARAMS) as out:
            (out["path"] / "heads.safetensors").write_bytes(b"half")
            raise RuntimeError("boom")
    assert not stage.exists()
    assert leftovers(tmp_path) == []
    assert not is_done(stage, PARAMS)


def test_an_error_keeps_an_earlier_finished_stage_intact(tmp_path):
    stage = tmp_path / "rm"
    with stage_output(stage, "rm", PARAMS) as out:
        (out["path"] / "heads.bin").write_text("v1")
    before = (stage / MANIFEST).read_text()
    other = {**PARAMS, "lr": 0.2}
    with pytest.raises(KeyboardInterrupt):
        with stage_output(stage, "rm", other) as out:
            (out["path"] / "heads.bin").write_text("v2, half written")
            raise KeyboardInterrupt
    assert (stage / "heads.bin").read_text() == "v1"
    assert (stage / MANIFEST).read_text() == before
    assert is_done(stage, PARAMS) and not is_done(stage, other)
    assert leftovers(tmp_path) == []


def test_a_rerun_replaces_the_whole_directory(tmp_path):
    stage = tmp_path / "policy"
    with stage_output(stage, "policy", PARAMS) as out:
        (out["path"] / "old_only.txt").write_text("old")
        (out["path"] / "model.bin").write_text("v1")
    other = {**PARAMS, "seed": 4}
    with stage_output(stage, "policy", other) as out:
        (out["path"] / "model.bin").write_text("v2")
    assert (stage / "model.bin").read_text() == "v2"
    assert not (stage / "old_only.txt").exists()  # no mix of the two runs
    assert is_done(stage, other) and not is_done(stage, PARAMS)
    assert leftovers(tmp_path) == []


def test_is_done_only_for_matching_params(tmp_path):
    stage = tmp_path / "sft"
    assert not is_done(stage, PARAMS)
    with stage_output(stage, "sft", PARAMS):
        pass
    assert is_done(stage, PARAMS)
    assert is_done(stage, dict(reversed(list(PARAMS.items()))))  # key order does not matter
    assert not is_done(stage, {**PARAMS, "lr": 0.10001})
    assert not is_done(stage, {**PARAMS, "extra": 1})
    assert not is_done(stage, {k: v for k, v in PARAMS.items() if k != "seed"})


def test_a_directory_without_a_manifest_or_with_a_broken_one_is_not_done(tmp_path):
    stage = tmp_path / "half"
    stage.mkdir()
    (stage / "model.bin").write_text("x")
    assert read_manifest(stage) is None and not is_done(stage, PARAMS)
    (stage / MANIFEST).write_text('{"params_hash": "trunc')
    assert read_manifest(stage) is None and not is_done(stage, PARAMS)


def test_single_file_stage_writes_its_manifest_beside_it(tmp_path, monkeypatch):
    target = tmp_path / "eval" / "seed42-prop0.1-maxmin.parquet"
    assert manifest_path(target) == tmp_path / "eval" / "seed42-prop0.1-maxmin.manifest.json"
    seen = {}
    real_write = runs._write_atomic

    def spy(path, text):
        seen["file_in_place"] = target.exists()
        real_write(path, text)

    monkeypatch.setattr(runs, "_write_atomic", spy)
    with stage_output(target, "evaluate", PARAMS) as out:
        (out["path"] / target.name).write_bytes(b"table")
        assert not target.exists()
    assert seen["file_in_place"]  # the manifest comes after the file
    assert target.is_file() and target.read_bytes() == b"table"
    manifest = json.loads(manifest_path(target).read_text())
    assert manifest["params_hash"] == params_hash(PARAMS)
    assert is_done(target, PARAMS)
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "seed42-prop0.1-maxmin.manifest.json",
        "seed42-prop0.1-maxmin.parquet",
    ]


def test_single_file_stage_error_keeps_the_earlier_file_and_manifest(tmp_path):
    target = tmp_path / "x.parquet"
    with stage_output(target, "evaluate", PARAMS) as out:
        (out["path"] / "x.parquet").write_bytes(b"v1")
    with pytest.raises(ValueError):
        with stage_output(target, "evaluate", {**PARAMS, "lr": 9}) as out:
            (out["path"] / "x.parquet").write_bytes(b"v2")
            raise ValueError("stop")
    assert target.read_bytes() == b"v1"
    assert is_done(target, PARAMS)
    assert leftovers(tmp_path) == []


def test_single_file_without_its_file_is_not_done(tmp_path):
    target = tmp_path / "x.parquet"
    with stage_output(target, "evaluate", PARAMS) as out:
        (out["path"] / "x.parquet").write_bytes(b"v1")
    target.unlink()
    assert manifest_path(target).exists()
    assert not is_done(target, PARAMS)


def test_require_names_the_stage_to_run(tmp_path):
    stage = tmp_path / "responses"
    with pytest.raises(FileNotFoundError) as info:
        require(stage, "the responses stage (02_responses)")
    assert "02_responses" in str(info.value) and str(stage) in str(info.value)
    with stage_output(stage, "responses", PARAMS, seed=0):
        pass
    assert require(stage, "the responses stage")["params_hash"] == params_hash(PARAMS)


def test_layout_paths_follow_the_design():
    from pathlib import Path

    run = Path("/r")
    assert runs.preferences_dir(run, 42, 0.1) == Path("/r/seed42/prop0.1/preferences")
    assert runs.rm_dir(run, 42, 0.05) == Path("/r/seed42/prop0.05/rm")
    assert runs.policy_dir(run, 42, 0.1, "maxmin") == Path("/r/seed42/prop0.1/policy/maxmin")
    assert runs.policy_dir(run, 42, None, "gold") == Path("/r/seed42/gold/policy")
    assert runs.policy_dir(run, 42, 0.1, "sft") == Path("/r/sft")
    assert runs.eval_file(run, runs.policy_id(42, 0.1, "sharedrep-k2")) == Path(
        "/r/eval/seed42-prop0.1-sharedrep-k2.parquet"
    )
    assert runs.policy_id(42, None, "gold") != runs.policy_id(43, None, "gold")
