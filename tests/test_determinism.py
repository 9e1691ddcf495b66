"""Same parameters and seed: byte-identical preference data and identical reward-model metrics on CPU,
in this process and in a fresh one; manifests record the seed, versions and hashes of the inputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sweep_helpers import ROOT, needs_hh

from sharedrep_utils import hh_data
from sharedrep_utils.config import DataConfig, load_config
from sharedrep_utils.groups import disagreement
from sharedrep_utils.runs import (
    file_hash,
    input_hashes,
    preferences_dir,
    read_manifest,
    responses_dir,
    rm_dir,
    sft_dir,
    stage_output,
)
from sharedrep_utils.stages import preferences, reward_models

OVERRIDES = {
    "reward_model.ks": [2],
    "reward_model.maxmin.num_epochs": 4,
    "reward_model.sharedrep.num_epochs": 4,
    "reward_model.uniform.num_epochs": 4,
}
WORDS = "sure here is how you can do that safely sorry I cannot help with this please ask someone".split()


def fake_run(run_dir, n=80, seed=0):
    """A run directory holding what stage 02a makes: an SFT manifest and scored response pairs."""
    rng = np.random.default_rng(seed)
    with stage_output(sft_dir(run_dir), "sft", {"fake": True}):
        pass
    table = pd.DataFrame(
        {
            "prompt_id": [f"p{i:03d}" for i in range(n)],
            "prompt": [f"\n\nHuman: How do I do thing number {i}?" for i in range(n)],
            "response_0": [" ".join(rng.choice(WORDS, 6)) + f" ({i}a)" for i in range(n)],
            "response_1": [" ".join(rng.choice(WORDS, 6)) + f" ({i}b)" for i in range(n)],
        }
    )
    for trait in load_config("smoke").gold.traits:
        for i in (0, 1):
            table[f"{trait}_{i}"] = rng.random(n)
    with stage_output(responses_dir(run_dir), "responses", {"fake": True}) as out:
        table.to_parquet(out["path"] / "responses.parquet", index=False)


def config(run_dir):
    return load_config("smoke", {**OVERRIDES, "run_dir": str(run_dir)})


@pytest.fixture
def two_runs(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        fake_run(run)
    return runs


def test_preferences_are_byte_identical_for_the_same_seed_and_differ_for_another(two_runs, tmp_path):
    a, b = two_runs
    preferences.main(config(a), 42, 0.3)
    preferences.main(config(b), 42, 0.3)
    blob = (preferences_dir(a, 42, 0.3) / "preferences.parquet").read_bytes()
    assert blob == (preferences_dir(b, 42, 0.3) / "preferences.parquet").read_bytes()
    preferences.main(config(a), 7, 0.3)
    other = pd.read_parquet(preferences_dir(a, 7, 0.3) / "preferences.parquet")
    assert not other["group"].equals(pd.read_parquet(preferences_dir(a, 42, 0.3) / "preferences.parquet")["group"])
    manifest = read_manifest(preferences_dir(a, 42, 0.3))
    assert manifest["seed"] == 42
    assert manifest["inputs"] == {"responses": file_hash(responses_dir(a) / "responses.parquet")}
    assert {"python", "torch", "numpy", "pandas"} <= set(manifest["versions"])
    assert "git_commit" in manifest and manifest["params"]["seed"] == 42
    # beside the pairs: trait redundancy (one row per trait) and the groups × groups disagreement matrix
    traits, groups = list(config(a).gold.traits), list(config(a).gold.groups)
    redundancy = pd.read_csv(preferences_dir(a, 42, 0.3) / "trait_redundancy.csv", index_col="trait")
    assert list(redundancy.index) == traits
    assert list(redundancy.columns) == ["std", *(f"rho_{t}" for t in traits), "r2_from_others", "note"]
    shares = pd.read_csv(preferences_dir(a, 42, 0.3) / "group_disagreement.csv", index_col="group")
    assert list(shares.index) == list(shares.columns) == groups
    # two groups: their one pairwise share is the share of pairs on which the groups do not all agree
    responses = pd.read_parquet(responses_dir(a) / "responses.parquet")
    overall = disagreement(responses, traits, config(a).gold.groups)
    assert shares.iat[0, 1] == pytest.approx(overall)
    assert manifest["trait_group_summary"]["max_pair_disagreement"] == round(overall, 6)


def test_reward_model_metrics_are_identical_in_this_process_and_a_fresh_one(two_runs):
    a, b = two_runs
    for run in (a, b):
        preferences.main(config(run), 42, 0.3)
    reward_models.main(config(a), 42, 0.3)
    # the second run in a fresh process, through the stage's own command line
    argv = [sys.executable, "-m", "sharedrep_utils.stages.reward_models", "--run-dir", str(b)]
    argv += ["--seed", "42", "--proportion", "0.3"]
    for key, value in OVERRIDES.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    ma, mb = read_manifest(rm_dir(a, 42, 0.3)), read_manifest(rm_dir(b, 42, 0.3))
    assert ma["metrics"] == mb["metrics"]
    assert ma["params_hash"] == mb["params_hash"] and ma["inputs"] == mb["inputs"]
    for name in ("maxmin", "sharedrep-k2", "uniform"):
        heads = f"{name}/heads.safetensors"
        assert (rm_dir(a, 42, 0.3) / heads).read_bytes() == (rm_dir(b, 42, 0.3) / heads).read_bytes()
    assert ma["inputs"]["preferences"] == file_hash(preferences_dir(a, 42, 0.3) / "preferences.parquet")
    assert ma["seed"] == 42
    # and a different seed gives different heads (the check above can fail)
    preferences.main(config(a), 5, 0.3)
    reward_models.main(config(a), 5, 0.3)
    assert read_manifest(rm_dir(a, 5, 0.3))["metrics"] != ma["metrics"]


def test_hh_files_are_hashed_into_the_data_and_a_changed_file_changes_its_hash(tmp_path):
    row = {"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away."}
    rows = [json.dumps({k: v.replace("Hi", f"Hi {i}") for k, v in row.items()}) for i in range(40)]
    (tmp_path / "part").mkdir()
    path = tmp_path / "part" / "test.jsonl"
    path.write_text("\n".join(rows) + "\n")
    data = hh_data.load_hh(DataConfig(eval_fraction=0.3), str(tmp_path))
    assert list(data.files) == ["hh:part/test.jsonl"]
    before = input_hashes(data.files)
    path.write_text("\n".join(rows[:-1]) + "\n")
    assert input_hashes(data.files) != before


def test_a_line_that_is_not_json_is_counted_and_skipped(tmp_path):
    good = {"chosen": "\n\nHuman: Hi {}?\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi {}?\n\nAssistant: No."}
    lines = [json.dumps({k: v.format(i) for k, v in good.items()}) for i in range(30)]
    lines.insert(3, '{"chosen": "\\n\\nHuman: cut off')
    (tmp_path / "test.jsonl").write_text("\n".join(lines) + "\n")
    data = hh_data.load_hh(DataConfig(eval_fraction=0.3), str(tmp_path))
    assert data.skipped["not valid JSON"] == 1
    assert len(data.train) + len(data.test) == 30


@pytest.mark.integration
@needs_hh
def test_every_manifest_of_a_real_run_records_seed_versions_and_input_hashes(reference_run):
    run_dir, _ = reference_run
    manifests = [p for p in run_dir.rglob("*manifest.json") if not any(s.startswith(".") for s in p.parts)]
    assert len(manifests) == 22  # sft, responses, 2 preferences, 2 rm, 7 policies, 8 evaluations, results
    for path in manifests:
        manifest = json.loads(path.read_text())
        assert {"seed", "versions", "params_hash", "inputs", "git_commit"} <= set(manifest), path
        assert {"torch", "transformers", "trl"} <= set(manifest["versions"]), path
        assert manifest["inputs"], f"{path} records no inputs"
        assert all(len(h) == 16 for h in manifest["inputs"].values())
    sft = read_manifest(sft_dir(run_dir))
    assert any(name.startswith("hh:") for name in sft["inputs"])
    assert sum(sft["skipped_rows"].values()) > 0  # real HH has multi-turn rows, skipped and counted
    responses = read_manifest(responses_dir(run_dir))
    assert responses["inputs"]["sft_model"] and responses["skipped_rows"] == sft["skipped_rows"]
