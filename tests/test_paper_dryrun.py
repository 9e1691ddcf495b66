"""The paper path without the hub (issue 13): same-class stand-ins of the paper's four hub checkpoints, the
paper profile end to end on them (one process and two), and what the dry run may change in the profile."""

import dataclasses
import fnmatch
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from sweep_helpers import HH_DIR, ROOT, network_attempts, sweep_env

from sharedrep_utils import standins
from sharedrep_utils.config import load_config

# What a dry-run override may touch besides model ids and the data location: sizes and counts only.
SIZES_AND_COUNTS = (
    "data.n_*",
    "*.max_new_tokens",
    "*.max_completion_length",
    "*.max_length",
    "*.max_steps",
    "*.num_train_epochs",
    "*.batch_size",
    "*.per_device_train_batch_size",
    "grpo.logging_steps",
    "sweep.seeds",
    "sweep.proportions",
    "reward_model.ks",
)
MODELS_AND_DATA = ("policy.model", "reward_model.backbone", "gold.traits.*.model", "data.hh_dir")
METHODS = {"maxmin", "sharedrep", "uniform", "gold", "sft"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("standins")
    return out, standins.build_standins(out, seed=0)


def flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and key not in ("trainer_kwargs",):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# --- (b) the dry run changes model ids, the data location, sizes and counts; nothing else -----------------


def test_dryrun_overrides_touch_only_models_data_sizes_and_counts(built):
    _, paths = built
    overrides = standins.dryrun_overrides(paths, hh_dir=HH_DIR)
    for key in overrides:
        assert any(fnmatch.fnmatch(key, p) for p in MODELS_AND_DATA + SIZES_AND_COUNTS), key
        assert any(fnmatch.fnmatch(key, p) for p in standins.ALLOWED_DRYRUN_KEYS), key
    for trait in load_config("paper").gold.traits:
        assert f"gold.traits.{trait}.model" in overrides  # every gold scorer is a stand-in
    paper = flat(dataclasses.asdict(load_config("paper")))
    dry = flat(dataclasses.asdict(load_config("paper", {**overrides, "run_dir": "/tmp/elsewhere"})))
    assert set(paper) == set(dry)
    changed = {k for k in paper if paper[k] != dry[k]}
    assert changed <= set(overrides) | {"run_dir"}
    assert {k: paper[k] for k in paper if k not in overrides and k != "run_dir"} == {
        k: dry[k] for k in dry if k not in overrides and k != "run_dir"
    }
    # the paper's own code path: the settings that choose it are untouched
    cfg = load_config("paper", overrides)
    assert {t.kind for t in cfg.gold.traits.values()} == {"sequence_classifier"}
    assert cfg.reward_model.pooling == "last" and cfg.reward_model.freeze_backbone
    assert (cfg.grpo.num_generations, cfg.grpo.per_device_train_batch_size) == (2, 4)
    assert cfg.evaluation.do_sample is False
    assert cfg.sft.trainer_kwargs["bf16"] and cfg.grpo.trainer_kwargs["use_vllm"]
    assert all(Path(overrides[k]).is_absolute() for k in overrides if k.endswith((".model", ".backbone", "hh_dir")))


def test_the_dry_run_prints_its_overrides_and_runs_the_paper_profile(built, tmp_path, capsys):
    out, _ = built
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.symlink(out, run_dir / "standins")  # built already: reused, not rebuilt
    calls = []
    code = standins.paper_dryrun(run_dir, lambda argv: calls.append(argv) or 0, ["--launcher", "none"])
    printed = capsys.readouterr().out
    assert code == 0 and len(calls) == 1
    argv = calls[0]
    assert argv[:5] == ["run", "--profile", "paper", "--run-dir", str(run_dir.resolve())]
    assert argv[-2:] == ["--launcher", "none"]
    overrides = dict(item.split("=", 1) for item in argv[6:-2:2])
    assert set(overrides) == set(standins.dryrun_overrides(standins.build_standins(out)))
    for key, value in overrides.items():
        assert f"[paper-dryrun]   {key} = {value}" in printed


# --- (c) the stand-ins: same classes, tokenizer families and formats as the hub checkpoints ----------------


def test_stand_ins_have_the_hub_checkpoints_classes_and_configs(built):
    from transformers import AutoConfig

    _, paths = built
    configs = {role: AutoConfig.from_pretrained(path) for role, path in paths.items()}
    for role in ("gold_helpful", "gold_harmless"):
        assert configs[role].architectures == ["GPT2ForSequenceClassification"]
        assert configs[role].num_labels == 1 and configs[role].pad_token_id is None
        assert configs[role].n_positions == 1024
    assert configs["backbone"].architectures == ["GPT2LMHeadModel"]
    llama = configs["policy"]
    assert llama.architectures == ["LlamaForCausalLM"] and llama.dtype == torch.bfloat16
    assert llama.num_attention_heads // llama.num_key_value_heads == 32 // 4  # TinyLlama's grouped-query ratio
    assert (llama.rms_norm_eps, llama.max_position_embeddings, llama.tie_word_embeddings) == (1e-5, 2048, False)
    assert llama.rope_parameters["rope_theta"] == 10000.0
    assert (llama.bos_token_id, llama.eos_token_id, llama.pad_token_id) == (1, 2, None)


def test_stand_in_tokenizers_have_no_pad_token_and_the_tinyllama_template(built):
    from transformers import AutoTokenizer

    _, paths = built
    gpt2 = AutoTokenizer.from_pretrained(paths["gold_helpful"])
    assert type(gpt2).__name__ == "GPT2Tokenizer" and gpt2.pad_token is None
    assert gpt2.bos_token == gpt2.eos_token == gpt2.unk_token == "<|endoftext|>"
    assert gpt2.convert_tokens_to_ids("<|endoftext|>") == len(gpt2) - 1  # last, as GPT-2's 50256
    text = "\n\nHuman: héllo 🙂?\n\nAssistant: fine"
    assert gpt2.decode(gpt2(text)["input_ids"]) == text  # byte-level: any text round-trips
    llama = AutoTokenizer.from_pretrained(paths["policy"])
    assert type(llama).__name__ == "LlamaTokenizer" and llama.pad_token is None
    assert [llama.unk_token, llama.bos_token, llama.eos_token] == ["<unk>", "<s>", "</s>"]
    assert llama.convert_tokens_to_ids(["<unk>", "<s>", "</s>", "<0x00>"]) == [0, 1, 2, 3]
    assert llama(text)["input_ids"][0] == 1  # bos added, as Llama's
    assert llama.decode(llama(text)["input_ids"], skip_special_tokens=True) == text  # byte fallback
    # the template lives in tokenizer_config.json, as TinyLlama-Chat ships it, and is smoke.yaml's
    config = json.loads((Path(paths["policy"]) / "tokenizer_config.json").read_text())
    assert config["chat_template"] == standins.TINYLLAMA_CHAT_TEMPLATE == load_config("smoke").policy.chat_template
    rendered = llama.apply_chat_template(
        [{"role": "user", "content": "Hi?"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|user|>\nHi?</s>\n<|assistant|>\n"


def test_stand_ins_are_deterministic_and_the_gold_models_differ(built, tmp_path):
    from safetensors.torch import load_file

    out, paths = built
    again = standins.build_standins(tmp_path / "again", seed=0)
    for role, path in paths.items():
        for name in ("model.safetensors", "tokenizer.json", "config.json"):
            assert (Path(path) / name).read_bytes() == (again[role] / name).read_bytes(), (role, name)
    helpful = load_file(Path(paths["gold_helpful"]) / "model.safetensors")
    harmless = load_file(Path(paths["gold_harmless"]) / "model.safetensors")
    assert not torch.equal(helpful["score.weight"], harmless["score.weight"])
    stamp = (out / "standins.json").stat().st_mtime_ns
    standins.build_standins(out, seed=0)
    assert (out / "standins.json").stat().st_mtime_ns == stamp  # a finished copy is reused


# --- the kit on the stand-ins: the paper-only code paths, piece by piece ----------------------------------


def test_gold_scores_and_features_do_not_depend_on_the_batch(built):
    """GPT-2 without a pad token: padded batches score (and featurise) each text as it scores alone."""
    from sharedrep_utils.gold import GoldScorer
    from sharedrep_utils.reward_models import FeatureExtractor

    _, paths = built
    cfg = load_config("paper", standins.dryrun_overrides(paths, hh_dir=HH_DIR))
    prompts = [f"\n\nHuman: question {'very ' * i}long {i}?" for i in range(5)]
    responses = [f"answer {'and more ' * (3 * i)}" for i in range(5)]
    scorer = GoldScorer(cfg.gold, "cpu")
    batched = scorer.traits(prompts, responses)
    for trait, values in batched.items():
        alone = [scorer.scorers[trait]([p], [r])[0] for p, r in zip(prompts, responses)]
        assert values == pytest.approx(alone, abs=1e-5)
    assert len(set(batched["helpful"])) == 5 and not (batched["helpful"] == batched["harmless"]).all()
    extractor = FeatureExtractor(cfg.reward_model, "cpu")
    texts = [p + "\n\nAssistant: " + r for p, r in zip(prompts, responses)]
    together = extractor(texts)
    assert torch.allclose(together, torch.cat([extractor([t]) for t in texts]), atol=1e-5)


def test_policy_prompts_are_tokenized_as_trl_does_and_greedy_batches_match(built):
    """The stand-in policy through the kit's generate: chat template, no second <s>, left padding."""
    from sharedrep_utils.hh_data import to_messages
    from sharedrep_utils.policy import generate, load_policy

    _, paths = built
    cfg = load_config("paper", standins.dryrun_overrides(paths, hh_dir=HH_DIR))
    model, tokenizer = load_policy(paths["policy"], cfg.policy, "cpu")
    assert model.dtype == torch.float32  # bf16 weights, loaded as fp32 on a CPU
    assert model.generation_config.max_length is None  # TinyLlama's 2048 would warn at every generate()
    prompts = ["\n\nHuman: hi", "\n\nHuman: what is a much longer question than the first one?"]
    # the ids TRL's trainers feed the policy (apply_chat_template, tokenize=True) are what generate feeds it
    for prompt in prompts:
        trl_ids = tokenizer.apply_chat_template(to_messages(prompt), add_generation_prompt=True, tokenize=True)
        trl_ids = trl_ids["input_ids"] if isinstance(trl_ids, dict) or hasattr(trl_ids, "keys") else trl_ids
        text = tokenizer.apply_chat_template(to_messages(prompt), tokenize=False, add_generation_prompt=True)
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == list(trl_ids)
    batched = generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=2, do_sample=False)
    alone = [generate(model, tokenizer, [p], max_new_tokens=6, batch_size=1, do_sample=False)[0] for p in prompts]
    assert batched == alone


# --- (a) and (d) the dry run end to end -----------------------------------------------------------------


def check_results_contract(run: Path, methods: set[str]) -> None:
    results = run / "results"
    summary = pd.read_csv(results / "summary.csv")
    assert set(summary["method"]) == methods
    assert set(summary["group"]) == {"minority", "majority"}
    assert summary["mean_gold_score"].notna().all()
    learned = summary[~summary["method"].isin(["gold"])]
    assert learned["win_rate_vs_gold"].notna().all()
    for name in ("summary_by_seed.csv", "head_to_head.csv", "rm_accuracy.csv", "summary.md", "manifest.json"):
        assert (results / name).is_file(), name
    for suffix in ("md", "tex", "csv"):
        assert (results / f"table_k2.{suffix}").is_file()
    figures = {p.stem for p in results.glob("*.png")}
    assert {"gold_score_vs_proportion", "win_rate_vs_proportion", "grpo_training_curves"} <= figures
    assert all((results / f"{stem}.pdf").is_file() for stem in figures)
    evals = sorted(p.name for p in (run / "eval").glob("*.parquet"))
    assert len(evals) == len({m for m in methods}) and all((run / "eval" / f"{Path(e).stem}.manifest.json").is_file()
                                                            for e in evals)  # fmt: skip
    for stage in ("sft", "responses", "seed42/prop0.2/preferences", "seed42/prop0.2/rm", "seed42/gold/policy"):
        assert (run / stage / "manifest.json").is_file(), stage
    table = pd.read_parquet(run / "eval" / "seed42-gold.parquet")
    assert len(table) == 16 and table["do_sample"].eq(False).all()  # greedy, the dry run's 16 prompts
    assert table["trait_helpful"].nunique() > 1  # GPT-2 sequence classifiers, reading each completion
    assert not list(run.rglob(".partial-*")) and network_attempts() == []
    # TinyLlama's generation_config max_length must not make every generate() call (every GRPO step) warn
    assert not [p.name for p in (run / "notebooks").glob("*.ipynb") if "seem to have been set" in p.read_text()]


def dryrun_command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sharedrep_utils", "paper-dryrun", "--run-dir", str(run_dir), *extra]


@pytest.mark.integration
def test_paper_dryrun_end_to_end(paper_dryrun_run):
    """`make paper-dryrun`: the paper profile's six stages on the stand-ins, offline, on a CPU (the run is
    conftest's `paper_dryrun_run`, which test_slurm_executor.py compares the SLURM executor's run with)."""
    run, result = paper_dryrun_run
    assert "[paper-dryrun] profile paper, with only these overrides" in result.stdout
    assert "[sharedrep] CPU run: ignoring GPU-only options bf16" in "".join(
        p.read_text() for p in (run / "notebooks").glob("01_sft*.ipynb")
    )
    check_results_contract(run, METHODS)
    grpo = json.loads((run / "seed42" / "prop0.2" / "policy" / "maxmin" / "manifest.json").read_text())
    assert grpo["generation_backend"] == "transformers"  # use_vllm dropped on a CPU
    log = json.loads((run / "notebooks" / "sweep_log.json").read_text())
    assert sum(s["status"] == "ran" for s in log["steps"]) == 13
    again = subprocess.run(dryrun_command(run), capture_output=True, text=True, env=sweep_env(), cwd=ROOT, timeout=300)
    assert again.returncode == 0 and "13 skipped" in again.stdout  # stand-ins reused, every stage done


def free_port() -> int:
    with socket.socket() as s:  # bind only (conftest blocks connecting, not binding)
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_paper_dryrun_through_accelerate_with_two_cpu_processes(tmp_path):
    """The same dry run with SFT, responses, GRPO and evaluation under `accelerate launch`, 2 CPU processes
    (`--multi_gpu` on a machine that shows no GPU, as tests/test_distributed.py). To keep it to a few
    minutes on 2 cores only SharedRep's policy is trained besides gold (every launched stage still runs:
    GRPO on a learned and on the gold reward, evaluation of SFT, gold and SharedRep)."""
    launch = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "--main_process_port", str(free_port())]  # fmt: skip
    run = tmp_path / "paper-dryrun-2p"
    env = {**sweep_env(), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    extra = ["--launcher", "accelerate", "--set", f"sweep.accelerate_args={json.dumps(launch)}",
             "--set", "reward_model.methods=[sharedrep]"]  # fmt: skip
    result = subprocess.run(dryrun_command(run, *extra), capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=1500)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_results_contract(run, {"sharedrep", "gold", "sft"})
    for manifest in ("sft/manifest.json", "responses/manifest.json", "seed42/gold/policy/manifest.json",
                     "seed42/prop0.2/policy/sharedrep-k2/manifest.json", "eval/sft.manifest.json"):  # fmt: skip
        assert json.loads((run / manifest).read_text())["num_processes"] == 2, manifest
    assert not list(run.glob(".launch-*"))


# --- scripts/device_check.sh -------------------------------------------------------------------------------


def device_check(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), *args], capture_output=True,
                          text=True, env=environment, cwd=ROOT, timeout=120)  # fmt: skip


def test_device_check_dry_run_prints_the_dry_run_and_shapes_commands(tmp_path):
    on_gpu = device_check("--dry-run", OUT=str(tmp_path), DEVICE_CHECK_DEVICE="cuda")
    assert on_gpu.returncode == 0, on_gpu.stderr
    lines = on_gpu.stdout.strip().splitlines()
    assert lines[0] == "[device-check] CUDA GPU visible: bf16 on, vLLM for GRPO if installed"
    dryrun, shapes = lines[1:]
    assert dryrun.split() == ["timeout", "330", sys.executable, "-m", "sharedrep_utils", "paper-dryrun",
                              "--run-dir", f"{tmp_path}/paper-dryrun", "--set", "device=cuda"]  # fmt: skip
    assert shapes.split()[:8] == ["timeout", "140", sys.executable, "-m", "sharedrep_utils", "shapes", "--profile",
                                  "paper"]  # fmt: skip
    assert "--device cuda" in shapes and f"--out {tmp_path}/shapes-cuda.json" in shapes
    assert sum(int(line.split()[1]) for line in (dryrun, shapes)) <= 8 * 60  # the whole check within 8 minutes
    assert not list(tmp_path.iterdir())  # --dry-run runs nothing, writes nothing
    # without a GPU (here: torch sees none) it says so and runs the same on the CPU
    on_cpu = device_check("--dry-run", OUT=str(tmp_path))
    if not torch.cuda.is_available():
        assert "no CUDA GPU visible: falling back to the CPU" in on_cpu.stdout
        assert "--set device=cpu" in on_cpu.stdout and "--device cpu" in on_cpu.stdout
    assert device_check("--what").returncode == 2


# --- local paths on the command line reach the notebooks, which run inside notebooks/ ------------------------


def test_local_paths_profiles_and_hh_dir_are_made_absolute_for_the_notebooks(tmp_path, monkeypatch):
    """A local checkpoint, data directory or YAML profile named relative to where `sharedrep run` starts
    must still be found by every notebook kernel, whose working directory is notebooks/."""
    from sharedrep_utils import cli, sweep

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "policy").mkdir(parents=True)
    hh = tmp_path / "hh"
    hh.mkdir()
    (hh / "test.jsonl").write_text(json.dumps({"chosen": "\n\nHuman: a?\n\nAssistant: b", "rejected": "x"}))
    (tmp_path / "mine.yaml").write_text((ROOT / "sharedrep_utils" / "profiles" / "smoke.yaml").read_text())
    monkeypatch.setenv("SHAREDREP_HH_DIR", "hh")
    seen = {}

    def fake_sweep(cfg, overrides, notebooks, profile=None, **kwargs):
        seen.update(overrides=overrides, profile=profile, hh=os.environ["SHAREDREP_HH_DIR"])
        return []

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    argv = ["run", "--profile", "mine.yaml", "--run-dir", "out", "--set", "policy.model=models/policy",
            "--set", "gold.traits.helpful.model=not/a/local/path", "--notebooks", str(ROOT / "notebooks")]  # fmt: skip
    assert cli.main(argv) == 0
    assert seen["overrides"]["policy.model"] == str(tmp_path / "models" / "policy")
    assert seen["overrides"]["gold.traits.helpful.model"] == "not/a/local/path"  # a hub id stays as it is
    assert seen["overrides"]["run_dir"] == "out"  # the sweep resolves it itself
    assert seen["profile"] == str(tmp_path / "mine.yaml")  # not its bare name, which no notebook could load
    assert seen["hh"] == str(hh)
    assert load_config(seen["profile"]).profile == "mine"
