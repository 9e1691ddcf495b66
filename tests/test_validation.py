"""Bad parameters stop before any work: one line naming the value, exit status 2, no traceback,
nothing written, whether they come from the command line, a YAML profile or a papermill parameter."""

import pytest
import yaml
from sweep_helpers import ROOT

from sharedrep_utils.cli import main
from sharedrep_utils.config import HH_DIR_ENV, ConfigError, load_config

# (command-line arguments, a piece of the one-line message)
BAD_COMMAND_LINES = [
    (["--profile", "smok"], "did you mean 'smoke'"),
    (["--profile", "nope"], "allowed: paper, paper-upstream, small, smoke"),
    (["--profile", "/no/such/profile.yaml"], "does not exist"),
    (["--proportions", "1.5"], "1.5 is outside (0, 1)"),
    (["--proportions", "0"], "0.0 is outside (0, 1)"),
    (["--proportions", "1"], "1.0 is outside (0, 1)"),
    (["--proportions", "-0.1"], "-0.1 is outside (0, 1)"),
    (["--proportions", "nan"], "nan is outside (0, 1)"),
    (["--proportions", "0.1", "0.1"], "0.1 more than once"),
    (["--proportions"], "--proportions: expected at least one argument"),
    (["--ks", "0"], "K=0"),
    (["--ks", "-2"], "K=-2"),
    (["--ks", "two"], "invalid int value: 'two'"),
    (["--seeds"], "--seeds: expected at least one argument"),
    (["--set", "sweep.seeds=[]"], "sweep.seeds is empty"),
    (["--set", "sweep.seeds=[-1]"], "Seed -1 is negative"),
    (["--seeds", "42", "42"], "42 more than once"),
    (["--methods", "maxmin", "dpo"], "'dpo'"),
    (["--methods", "maxmn"], "did you mean 'maxmin'"),
    (["--set", "reward_model.methods=[]"], "reward_model.methods is empty"),
    (["--set", "grpo.betta=0.1"], "did you mean 'grpo.beta'"),
    (["--set", "gpro.beta=0.1"], "did you mean 'grpo'"),
    (["--set", "reward_model.sharedrep.learnig_rate=1"], "did you mean 'reward_model.sharedrep.learning_rate'"),
    (["--set", "grpo=3"], "Section 'grpo' must be a mapping"),
    (["--set", ".beta=3"], "empty name between dots"),
    (["--set", "grpo.beta.x=1"], "'beta' is a value, not a section"),
    (["--set", "sweep.seeds=[1,"], "is not valid YAML"),
    (["--set", "novalue"], "key.sub=value"),
    (["--set", "sft.learning_rate=fast"], "sft.learning_rate must be a number"),
    (["--set", "sft.learning_rate=0"], "sft.learning_rate 0.0 must be positive"),
    (["--set", "grpo.num_generations=1"], "grpo.num_generations 1 is below 2"),
    (["--set", "data.n_eval_prompts=0"], "data.n_eval_prompts 0 must be at least 1"),
    (["--set", "gold.groups.majority.harmless=0.9"], "sum to 1.6"),
    (["--set", "gold.groups.minority={neutral: 1.2, harmless: -0.2}"], "negative weight -0.2"),
    (["--set", "gold.groups.minority.neutral=.nan"], "'neutral' a negative weight nan"),
    (["--set", "gold.groups.majority.upbeet=0.3"], "did you mean 'upbeat'"),
    (["--set", "gold.minority_group=nobody"], "'nobody'"),
    (["--set", "gold.groups={minority: {neutral: 1.0}}"], "at least 2 are needed"),
    (["--set", "data.hh_dir=/no/such/dir"], "/no/such/dir"),
    (["--notebooks", "/no/such/notebooks"], "no 01_sft.ipynb"),
    (["--lock-wait", "soon"], "invalid float value: 'soon'"),
    (["--profle", "smoke"], "unrecognized arguments: --profle"),
]


@pytest.fixture(autouse=True)
def no_hh_dir_env(monkeypatch):
    monkeypatch.delenv(HH_DIR_ENV, raising=False)


def refuse(argv, run_dir, capsys) -> str:
    """The command's stderr, after checking: status 2, one line, no traceback, nothing written."""
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(["run", "--run-dir", str(run_dir), *argv]))
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert not run_dir.exists()
    return err


@pytest.mark.parametrize(("argv", "needle"), BAD_COMMAND_LINES, ids=[" ".join(a) for a, _ in BAD_COMMAND_LINES])
def test_bad_command_lines(tmp_path, capsys, argv, needle):
    assert needle in refuse(argv, tmp_path / "run", capsys)


def test_an_empty_data_directory_is_refused(tmp_path, capsys):
    empty = tmp_path / "hh"
    empty.mkdir()
    (empty / "README.md").write_text("no data here")
    assert "holds no *.jsonl" in refuse(["--set", f"data.hh_dir={empty}"], tmp_path / "run", capsys)


BAD_PROFILES = [
    ("reward_model: {methods: []}\n", "reward_model.methods is empty"),
    ("sweep: {proportions: [0.1, 2]}\n", "2.0 is outside (0, 1)"),
    ("sweep: {seeds: []}\n", "sweep.seeds is empty"),
    ("reward_model: {ks: [0]}\n", "K=0"),
    ("grpo: {betaa: 0.1}\n", "did you mean 'grpo.beta'"),
    ("grpo:\n", "Section 'grpo' must be a mapping"),
    ("- a\n- b\n", "must be a mapping"),
    ("sweep: {seeds: [1\n", "is not valid YAML at line"),
    (
        "gold: {traits: {h: {kind: non_offensive, model: 'pkg:profanity_check'}},"
        " groups: {a: {h: 0.5}, b: {h: 1.0}}, minority_group: a}\n",
        "'a' weights sum to 0.5",
    ),
]


def smoke_with(text: str) -> str:
    """The smoke profile with `text`'s sections laid over it (YAML that is not a mapping: `text` alone)."""
    try:
        extra = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if not isinstance(extra, dict):
        return text
    base = yaml.safe_load((ROOT / "sharedrep_utils" / "profiles" / "smoke.yaml").read_text())
    for key, value in extra.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return yaml.safe_dump(base, sort_keys=False)


@pytest.mark.parametrize(("text", "needle"), BAD_PROFILES, ids=[n for _, n in BAD_PROFILES])
def test_bad_yaml_profiles(tmp_path, capsys, text, needle):
    profile = tmp_path / "mine.yaml"
    profile.write_text(smoke_with(text))  # a custom profile: the smoke one with one bad value
    assert needle in refuse(["--profile", str(profile)], tmp_path / "run", capsys)


def test_a_key_given_twice_is_refused_not_last_one_wins(tmp_path, capsys):
    smoke = (ROOT / "sharedrep_utils" / "profiles" / "smoke.yaml").read_text()
    profile = tmp_path / "mine.yaml"
    profile.write_text(smoke + "grpo: {beta: 0.1}\n")  # a second top-level grpo section
    message = refuse(["--profile", str(profile)], tmp_path / "run", capsys)
    assert "key 'grpo' appears twice" in message and str(profile) in message
    profile.write_text("sweep:\n  seeds: [1]\n  seeds: [2]\n")  # twice inside one section
    message = refuse(["--profile", str(profile)], tmp_path / "run", capsys)
    assert "key 'seeds' appears twice in one section (line 3)" in message


def test_the_smoke_profile_itself_is_accepted(tmp_path):
    cfg = load_config("smoke", {"run_dir": str(tmp_path / "run")})
    assert cfg.sweep.seeds and not (tmp_path / "run").exists()


def test_a_bad_papermill_parameter_fails_in_the_first_cell_and_writes_nothing(tmp_path):
    """The notebooks validate their `overrides` parameter the same way, before any stage runs."""
    import papermill as pm

    run_dir = tmp_path / "run"
    out = tmp_path / "executed.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(
            str(ROOT / "notebooks" / "02_preference_data.ipynb"),
            str(out),
            parameters={"overrides": {"run_dir": str(run_dir), "sweep.proportions": [0.1, 1.5]}, "seed": 42},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(ROOT / "notebooks"),
        )
    assert info.value.ename == "ConfigError"
    assert "1.5 is outside (0, 1)" in info.value.evalue
    assert not run_dir.exists()


def test_config_error_is_a_value_error_with_one_line():
    with pytest.raises(ConfigError) as info:
        load_config("smoke", {"reward_model.methods": ["uniform", "maxmin", "uniform"]})
    assert issubclass(ConfigError, ValueError)
    assert str(info.value) == "reward_model.methods lists 'uniform' more than once; give each value once."
