"""The launcher setting (sweep.launcher / sweep.accelerate_config), the shipped accelerate configs,
and GPU options falling back on machines that lack them."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sharedrep_utils import cli, training
from sharedrep_utils.config import ConfigError, load_config
from sharedrep_utils.launcher import EVERY_PROCESS, accelerate_command, launch

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "configs" / "accelerate"


@pytest.mark.parametrize(
    ("name", "kind", "processes"), [("1gpu", "NO", 1), ("ddp", "MULTI_GPU", 8), ("zero2", "DEEPSPEED", 8)]
)
def test_shipped_accelerate_configs_load_with_accelerate(name, kind, processes):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(SHIPPED / f"{name}.yaml"))  # accelerate's own loader: rejects unknown keys
    assert config.distributed_type.value == kind and config.num_processes == processes
    assert config.mixed_precision == "no"  # precision comes from the profile (bf16/fp16), not from here
    if name == "zero2":
        assert config.deepspeed_config["zero_stage"] == 2
        # left to "auto" so the profile's gradient accumulation can never mismatch DeepSpeed's
        assert "gradient_accumulation_steps" not in config.deepspeed_config


def test_launcher_settings_are_validated():
    cfg = load_config("smoke", {"sweep.launcher": "accelerate", "sweep.accelerate_config": "ddp"})
    assert cfg.sweep.launcher == "accelerate"
    with pytest.raises(ConfigError, match=r"sweep.launcher 'torchrun' is not one of none, accelerate"):
        load_config("smoke", {"sweep.launcher": "torchrun"})
    with pytest.raises(ConfigError, match=r"sweep.accelerate_config 'ddp8' is not a file; .*1gpu, ddp, zero2"):
        load_config("smoke", {"sweep.accelerate_config": "ddp8"})
    assert load_config("smoke").sweep.launcher == "none"
    assert load_config("paper", {"device": "cpu"}).sweep.launcher == "none"


def test_accelerate_command_names_config_flags_and_stage_arguments(tmp_path):
    own = tmp_path / "my.yaml"
    own.write_text((SHIPPED / "ddp.yaml").read_text())
    cfg = load_config(
        "smoke",
        {"sweep.accelerate_config": str(own), "sweep.accelerate_args": ["--num_processes", "4"]},
    )
    command = accelerate_command(cfg, "sharedrep_utils.stages.grpo", Path("p.yaml"), {"seed": 42, "method": "gold"})
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[3:] == [
        "--config_file",
        str(own.resolve()),
        "--num_processes",
        "4",
        "-m",
        "sharedrep_utils.stages.grpo",
        "--profile",
        "p.yaml",
        "--seed",
        "42",
        "--method",
        "gold",
    ]
    by_name = accelerate_command(load_config("smoke", {"sweep.accelerate_config": "zero2"}), "m", Path("p"), {})
    assert by_name[by_name.index("--config_file") + 1] == str((SHIPPED / "zero2.yaml").resolve())
    assert "--config_file" not in accelerate_command(load_config("smoke"), "m", Path("p"), {})


def test_cli_flags_set_the_launcher(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("distributed_type: MULTI_GPU\n")
    args = cli.build_parser().parse_args(["run", "--launcher", "accelerate", "--accelerate-config", "mine.yaml"])
    overrides = cli.overrides_from(args)
    # absolute: papermill runs the notebooks inside notebooks/, where a relative path would not resolve
    assert overrides == {"sweep.launcher": "accelerate", "sweep.accelerate_config": str(tmp_path / "mine.yaml")}
    assert cli.overrides_from(cli.build_parser().parse_args(["run"])) == {}
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--launcher", "mpi"])


def test_launch_runs_in_process_unless_asked(monkeypatch):
    calls = []
    stage = SimpleNamespace(__name__="sharedrep_utils.stages.evaluate", main=lambda cfg, **kw: calls.append(kw) or "t")
    monkeypatch.setattr("sharedrep_utils.launcher._run_accelerate", lambda *a: calls.append(("accelerate", a[1], a[2])))
    assert launch(load_config("smoke"), stage, seed=1, proportion=None, method="sft") == "t"
    assert calls == [{"seed": 1, "proportion": None, "method": "sft"}]
    calls.clear()
    launch(load_config("smoke", {"sweep.launcher": "accelerate"}), stage, seed=1, proportion=None, method="sft")
    # the subprocess first (None arguments left out), then main here reads what it saved
    assert calls == [
        ("accelerate", "sharedrep_utils.stages.evaluate", {"seed": 1, "method": "sft"}),
        {"seed": 1, "proportion": None, "method": "sft"},
    ]
    calls.clear()
    single_device = SimpleNamespace(__name__="sharedrep_utils.stages.reward_models", main=lambda cfg, **kw: kw)
    launch(load_config("smoke", {"sweep.launcher": "accelerate"}), single_device, seed=1, proportion=0.1)
    assert calls == [] and "reward_models" not in EVERY_PROCESS


def test_a_failing_launch_names_the_stage_and_the_error(tmp_path):
    cfg = load_config(
        "smoke",
        {
            "run_dir": str(tmp_path / "run"),
            "sweep.launcher": "accelerate",
            "sweep.accelerate_args": ["--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no"],
        },
    )
    from sharedrep_utils.stages import responses

    # no SFT policy yet: the launched stage stops with its one-line error, which comes back here
    with pytest.raises(RuntimeError, match=r"sharedrep_utils.stages.responses failed .*run 01_sft first"):
        launch(cfg, responses)
    assert not list((tmp_path / "run").glob(".launch-*"))


def test_gpu_options_fall_back_on_a_cpu_with_one_line(capsys, tmp_path):
    extra = {"bf16": True, "activation_checkpointing": True, "use_vllm": True, "vllm_mode": "colocate"}
    kwargs = training.trainer_arguments("cpu", 3, tmp_path, extra)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["[sharedrep] CPU run: ignoring GPU-only options bf16, activation_checkpointing, use_vllm."]
    assert kwargs["use_cpu"] and not kwargs["bf16"] and not kwargs["fp16"] and "use_vllm" not in kwargs
    assert "activation_checkpointing" not in kwargs and kwargs["seed"] == 3
    assert kwargs["gradient_checkpointing"] is False  # TRL's default is on; on a CPU it only recomputes
    training.trainer_arguments("cpu", 3, tmp_path, {"learning_rate": 1e-3})
    assert capsys.readouterr().out == ""  # nothing to drop, nothing said


def test_gpu_options_on_a_gpu_without_vllm_or_bf16(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(training.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(training.torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(training.importlib.util, "find_spec", lambda name: None)  # vllm not installed
    kwargs = training.trainer_arguments("cuda:1", 0, tmp_path, {"bf16": True, "use_vllm": True})
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "[sharedrep] vLLM is not installed: GRPO generates with transformers instead (pip install vllm).",
        "[sharedrep] this GPU has no bf16: training in fp16 instead.",
    ]
    assert kwargs["use_vllm"] is False and kwargs["fp16"] and not kwargs["bf16"]
    monkeypatch.setattr(training.torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(training.importlib.util, "find_spec", lambda name: object())  # vllm installed
    kwargs = training.trainer_arguments("cuda", 0, tmp_path, {"use_vllm": True, "activation_checkpointing": True})
    assert capsys.readouterr().out == ""
    assert kwargs["use_vllm"] and kwargs["bf16"] and kwargs["activation_checkpointing"]


def test_paper_profile_sets_the_gpu_options():
    raw = yaml.safe_load((ROOT / "sharedrep_utils" / "profiles" / "paper.yaml").read_text())
    assert raw["sft"]["trainer_kwargs"]["bf16"] and raw["sft"]["trainer_kwargs"]["activation_checkpointing"]
    assert raw["grpo"]["trainer_kwargs"]["use_vllm"] and raw["grpo"]["trainer_kwargs"]["bf16"]
