"""Safe loading and no leaked secrets.

- No `trust_remote_code` unless a model's configuration sets it; never a literal True in the code.
- Nothing saved or loaded with pickle: what the kit writes is safetensors and loads back with pickle off.
- A real run's outputs, manifests, executed notebooks and log hold no `hf_` token from the environment.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sweep_helpers import FAKE_HF_TOKEN, ROOT, needs_hh, network_attempts, sweep_env

PACKAGE = ROOT / "sharedrep_utils"
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"}
SOURCES = sorted(PACKAGE.rglob("*.py"))


def calls(name: str):
    """(file, line, ast.Call) for every call whose dotted name ends with `name`."""
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = ast.unparse(node.func)
                if func == name or func.endswith("." + name):
                    yield path.relative_to(ROOT), node.lineno, node


def test_the_package_sources_are_found():
    assert len(SOURCES) > 10 and (PACKAGE / "runs.py") in SOURCES


def test_the_call_scanner_sees_the_packages_loading_calls():
    assert len(list(calls("from_pretrained"))) >= 4  # so an empty answer below means "none", not "blind"


@pytest.mark.parametrize("name", ["torch.save", "pickle.dump", "pickle.load", "pickle.loads", "joblib.dump"])
def test_nothing_is_written_or_read_with_pickle(name):
    assert list(calls(name)) == []


def test_trust_remote_code_is_never_hard_wired_on():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                value = node.value
                assert not (isinstance(value, ast.Constant) and value.value), f"{path.name}: trust_remote_code=True"
                # it comes from the model's configuration
                assert "trust_remote_code" in ast.unparse(value), f"{path.name}: {ast.unparse(value)}"
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if isinstance(key, ast.Constant) and key.value == "trust_remote_code":
                        assert "trust_remote_code" in ast.unparse(value), f"{path.name}: {ast.unparse(value)}"


def test_saved_weights_are_safetensors_and_load_back_without_pickle(tmp_path, monkeypatch):
    """What the kit saves (a policy, reward heads) is safetensors only, and loads with pickle switched off."""
    import pickle

    import torch

    from sharedrep_utils.config import PolicyConfig, RewardModelConfig, TinyPolicyConfig
    from sharedrep_utils.policy import build_tiny_policy, load_policy
    from sharedrep_utils.reward_models import GroupHeads, load_heads, save_heads

    template = yaml.safe_load((PACKAGE / "profiles" / "smoke.yaml").read_text())["policy"]["chat_template"]
    policy = PolicyConfig(model="build:tiny-llama", chat_template=template, tiny=TinyPolicyConfig(
        vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    ))
    texts = [f"Human: question {i}? Assistant: answer {i}." for i in range(50)]
    build_tiny_policy(policy, texts, tmp_path / "policy", seed=0)
    heads = GroupHeads("sharedrep", dim=8, n_groups=2, k=2)
    save_heads(heads, tmp_path / "rm", ["minority", "majority"], RewardModelConfig(backbone="b"), {})
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in PICKLE_SUFFIXES]
    assert {p.parent.name for p in files if p.suffix == ".safetensors"} == {"policy", "rm"}

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    model, _ = load_policy(tmp_path / "policy", policy, "cpu")
    loaded, _ = load_heads(tmp_path / "rm")
    assert sum(p.numel() for p in model.parameters()) > 0
    for name, tensor in heads.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


@pytest.mark.parametrize("profile", sorted((PACKAGE / "profiles").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_profiles_do_not_trust_remote_code(profile):
    raw = yaml.safe_load(profile.read_text())
    assert not (raw.get("policy") or {}).get("trust_remote_code", False)


def test_the_policy_loader_passes_the_configured_flag(monkeypatch, tmp_path):
    """Off by default, on only when this model's configuration says so."""
    import transformers

    from sharedrep_utils.config import PolicyConfig
    from sharedrep_utils.policy import load_tokenizer

    seen = []

    def fake(*args, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        raise RuntimeError("stop")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    for flag in (False, True):
        with pytest.raises(RuntimeError, match="stop"):
            load_tokenizer(tmp_path, PolicyConfig(trust_remote_code=flag))
    assert seen == [False, True]


def test_the_sweep_network_guard_refuses_and_records_a_connection(tmp_path):
    """The guard every test sweep runs under (conftest.NETWORK_GUARD) works, in a fresh process."""
    log = tmp_path / "attempts.log"
    probe = "import socket; socket.create_connection(('203.0.113.7', 443), timeout=1)"
    env = {**sweep_env(), "SHAREDREP_NETWORK_LOG": str(log)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert result.returncode != 0 and "network access is blocked" in result.stderr
    assert "203.0.113.7" in log.read_text()


@pytest.mark.integration
@needs_hh
def test_the_smoke_sweep_made_no_network_connection(reference_run):
    assert network_attempts() == []  # every sweep process and kernel of this session, loopback aside


@pytest.mark.integration
@needs_hh
def test_a_run_keeps_weights_in_safetensors_and_no_pickles(reference_run):
    run_dir, _ = reference_run
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in PICKLE_SUFFIXES]
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert any(p.match("sft/model/model.safetensors") for p in weights)
    assert any(p.match("rm/maxmin/heads.safetensors") for p in weights)


@pytest.mark.integration
@needs_hh
def test_no_hf_token_from_the_environment_lands_in_any_output(reference_run):
    run_dir, result = reference_run
    token = FAKE_HF_TOKEN.encode()
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 50 and any(p.suffix == ".ipynb" for p in files)
    assert [p for p in files if token in p.read_bytes()] == []
    assert FAKE_HF_TOKEN not in result.stdout + result.stderr
    # the check can fail: the token was in the sweep's environment, where a kernel could have seen it
    assert FAKE_HF_TOKEN.startswith("hf_") and len(FAKE_HF_TOKEN) == 37
    assert not any(Path(p).name == "training_args.bin" for p in files)
