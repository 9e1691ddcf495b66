"""The sweep command refuses bad input with one line and exit status 2, before writing anything."""

import pytest

from sharedrep_utils.cli import main


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--profile", "nope"], "Unknown profile 'nope'"),
        (["--proportions", "1.5"], "1.5 is outside (0, 1)"),
        (["--ks", "0"], "K=0"),
        (["--methods", "maxmin", "dpo"], "'dpo'"),
        (["--set", "grpo.betta=0.1"], "did you mean 'grpo.beta'"),
        (["--set", "gold.groups.majority.harmless=0.9"], "sum to 1.6"),
        (["--set", "data.hh_dir=/no/such/dir"], "/no/such/dir"),
        (["--set", "sft.learning_rate=fast"], "sft.learning_rate must be a number"),
        (["--set", "novalue"], "key.sub=value"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv, needle):
    run_dir = tmp_path / "run"
    assert main(["run", "--run-dir", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err
    assert len(err.splitlines()) == 1
    assert not run_dir.exists()
