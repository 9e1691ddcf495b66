"""`sharedrep run --executor slurm` (sharedrep_utils/slurm.py) and the executor flags' bad input.

The integration test runs the paper dry run (the stand-ins of `make paper-dryrun`) through a real SLURM
cluster, one job per stage run, and checks that it gives the same results as the local run conftest makes
(`paper_dryrun_run`). CI starts a one-node cluster with scripts/slurm-local.sh; elsewhere the test skips,
saying why."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from sweep_helpers import ROOT, sweep_env

from sharedrep_utils import cli
from sharedrep_utils.config import SlurmConfig
from sharedrep_utils.slurm import job_parameters, sbatch_flags


def cluster_problem() -> str | None:
    """Why no SLURM test can run here, or None."""
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH (start a one-node cluster: scripts/slurm-local.sh start)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        return f"sinfo failed: {error}"
    if not any(s.rstrip("*~#") in ("idle", "mix", "alloc", "comp") for s in states):
        return f"the SLURM cluster has no node up (sinfo states: {states or 'none'}); scripts/slurm-local.sh start"
    return None


needs_slurm = pytest.mark.skipif(cluster_problem() is not None, reason=str(cluster_problem()))


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    return code, capsys.readouterr().err


# --- bad input: one line naming the value and what is allowed, exit 2, nothing written or submitted -----------


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--jobs", "0"], "argument --jobs: 0 is not allowed; give 1 or more"),
        (["--jobs", "two"], "argument --jobs: 'two' is not a whole number; give 1 or more"),
        (["--gpus-per-job", "0"], "argument --gpus-per-job: 0 is not allowed; give 1 or more"),
        (["--executor", "kubernetes"], "argument --executor: invalid choice: 'kubernetes' (choose from"),
        (["--no-wait"], "--no-wait is for --executor slurm"),
        (["--executor", "slurm", "--jobs", "2"], "--jobs and --gpus-per-job are for --executor local"),
        (["--slurm-opt", "qos"], "--slurm-opt 'qos' is not KEY=VALUE"),
    ],
)
def test_bad_executor_flags_are_one_line_and_exit_2(tmp_path, capsys, flags, said):
    run = tmp_path / "run"
    code, err = run_cli(["run", "--profile", "smoke", "--run-dir", str(run), *flags], capsys)
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    assert not run.exists()


def test_slurm_without_sbatch_says_so_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch anywhere
    run = tmp_path / "run"
    code, err = run_cli(["run", "--profile", "smoke", "--run-dir", str(run), "--executor", "slurm"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--executor slurm needs SLURM's sbatch on PATH" in err and "allowed: local, slurm" in err
    assert not run.exists()


def test_job_parameters_carry_every_resource_setting():
    """What the profile's slurm: section asks of SLURM, as submitit's parameters and as sbatch flags."""
    slurm = SlurmConfig(partition="gpu", gpus_per_job=1, cpus_per_job=8, mem_gb=32, time_min=240, account="lab",
                        extra={"qos": "high"})  # fmt: skip
    params = job_parameters(slurm)
    assert {k: params[k] for k in ("partition", "gpus_per_node", "cpus_per_task", "mem", "time", "account")} == {
        "partition": "gpu", "gpus_per_node": 1, "cpus_per_task": 8, "mem": "32768M", "time": 240, "account": "lab"
    }  # fmt: skip
    assert params["additional_parameters"] == {"kill-on-invalid-dep": "yes", "qos": "high"}
    flags = sbatch_flags(params)
    for flag in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32768M", "--time=240",
                 "--account=lab", "--qos=high", "--kill-on-invalid-dep=yes"):  # fmt: skip
        assert flag in flags
    assert "partition" not in job_parameters(SlurmConfig())  # empty: the cluster's default partition


@needs_slurm
@pytest.mark.parametrize(
    "flags, said",
    [
        (["--slurm-partition", "nosuchpartition"], "invalid partition specified: nosuchpartition"),
        (["--slurm-cpus", "4096"], "--cpus-per-task=4096"),
        (["--slurm-cpus", "0"], "slurm.cpus_per_job 0 is not allowed; give 1 or more"),
    ],
)
def test_a_request_slurm_rejects_is_one_line_exit_2_and_nothing_is_submitted(tmp_path, capsys, flags, said):
    run = tmp_path / "run"
    before = queued_jobs()
    code, err = run_cli(["run", "--profile", "smoke", "--run-dir", str(run), "--executor", "slurm", *flags], capsys)
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    if "SLURM" in err:  # SLURM's own refusal also says what the cluster has
        assert "SLURM rejects the job request" in err and "this cluster has partitions" in err
    assert not run.exists() and queued_jobs() == before


def queued_jobs() -> set[str]:
    out = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i"], capture_output=True, text=True).stdout
    return set(out.split())


# --- the paper dry run through SLURM ------------------------------------------------------------------------


@needs_slurm
@pytest.mark.integration
def test_paper_dryrun_through_slurm_gives_the_local_runs_results(paper_dryrun_run, tmp_path):
    local, _ = paper_dryrun_run
    run = tmp_path / "paper-dryrun-slurm"
    run.mkdir()
    os.symlink(local / "standins", run / "standins")  # the same stand-ins (built deterministically): reused
    command = [sys.executable, "-m", "sharedrep_utils", "paper-dryrun", "--run-dir", str(run), "--executor", "slurm"]
    before = queued_jobs()
    result = subprocess.run(command, capture_output=True, text=True, env=sweep_env(), cwd=ROOT, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = json.loads((run / "slurm" / "jobs.json").read_text())
    assert len(jobs) == 13 and set(jobs.values()).isdisjoint(before)
    # what each job waited for was given to SLURM, and its name says the stage run
    for label, job in jobs.items():
        assert (run / "slurm" / f"{job}_0_log.out").is_file(), label
    shown = subprocess.run(["scontrol", "show", "job", jobs["04_grpo-seed42-prop0.2-maxmin"]], capture_output=True,
                           text=True).stdout  # fmt: skip
    if shown:  # SLURM forgets ended jobs after MinJobAge
        assert "JobName=sharedrep:04_grpo-seed42-prop0.2-maxmin" in shown
    assert f"[submitted] 04_grpo-seed42-prop0.2-maxmin: job {jobs['04_grpo-seed42-prop0.2-maxmin']}, after job(s) " \
           f"{jobs['03_reward_models-seed42-prop0.2']}" in result.stdout  # fmt: skip
    # the same results as the local run: every evaluation and the summary
    evals = sorted(p.name for p in (local / "eval").glob("*.parquet"))
    assert evals and evals == sorted(p.name for p in (run / "eval").glob("*.parquet"))
    for name in evals:
        pd.testing.assert_frame_equal(pd.read_parquet(run / "eval" / name), pd.read_parquet(local / "eval" / name))
    pd.testing.assert_frame_equal(pd.read_csv(run / "results" / "summary.csv"),
                                  pd.read_csv(local / "results" / "summary.csv"))  # fmt: skip
    log = json.loads((run / "notebooks" / "sweep_log.json").read_text())
    assert log["kernel"] == "one kernel per SLURM job" and sum(s["status"] == "ran" for s in log["steps"]) == 13
    assert sorted(p.stem for p in (run / "notebooks").glob("*.ipynb")) == sorted(
        p.stem for p in (local / "notebooks").glob("*.ipynb")
    )
    # the same command again: every stage run done, nothing submitted
    again = subprocess.run(command, capture_output=True, text=True, env=sweep_env(), cwd=ROOT, timeout=300)
    assert again.returncode == 0 and "13 skipped" in again.stdout and "[submitted]" not in again.stdout


@pytest.mark.integration
def test_plan_of_the_finished_local_dry_run_says_every_stage_run_is_done(paper_dryrun_run, capsys):
    """`sharedrep plan` with the dry run's own arguments (printed by it) on its finished run directory."""
    local, result = paper_dryrun_run
    prefix = "[paper-dryrun]   "
    sets = [line.removeprefix(prefix).replace(" = ", "=", 1) for line in result.stdout.splitlines()
            if line.startswith(prefix)]  # fmt: skip
    argv = ["plan", "--profile", "paper", "--run-dir", str(local.resolve())]
    for item in sets:
        argv += ["--set", item]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "13 stage runs: 13 done, 0 to run"
    assert all(" done " in line for line in out[1:-1])


@needs_slurm
def test_a_failed_job_is_reported_with_its_log_and_what_waits_for_it_never_runs(tmp_path, capsys):
    """Stand-in notebooks (test_sweep_graph.py's) on SLURM, one of them failing: the failure comes back with the
    job's log and executed notebook; SLURM cancels what waits for it; independent stage runs still finish."""
    from test_sweep_graph import records, stand_in_notebooks, tiny_config

    from sharedrep_utils import sweep
    from sharedrep_utils.executors import StageFailed

    notebooks = stand_in_notebooks(tmp_path / "notebooks")
    run = tmp_path / "run"
    run.mkdir()
    cfg = tiny_config(run, **{"sweep.seeds": [1]})
    lines = []
    with pytest.raises(StageFailed) as caught:
        sweep.run_sweep(cfg, {"fail": ["04_grpo-seed1-prop0.1-maxmin"]}, notebooks=notebooks, log=lines.append,
                        executor="slurm")  # fmt: skip
    error = caught.value
    assert error.label == "04_grpo-seed1-prop0.1-maxmin" and error.ename == "ValueError"
    assert error.evalue.startswith("planned failure in 04_grpo-seed1-prop0.1-maxmin")
    assert "(2 stage run(s) waiting for it were cancelled)" in error.evalue  # its evaluation and the results
    jobs = json.loads((run / "slurm" / "jobs.json").read_text())
    assert error.log_file == run / "slurm" / f"{jobs[error.label]}_0_log.err" and error.log_file.is_file()
    assert "planned failure" in error.notebook.read_text()
    ran = {r["label"] for r in records(run)}
    assert "05_evaluate-seed1-gold" in ran  # independent of the failure: it ran to the end
    assert not ran & {"05_evaluate-seed1-prop0.1-maxmin", "06_results"}
    assert any(line.startswith("[not run] 06_results: job ") for line in lines)


@needs_slurm
def test_no_wait_queues_the_sweep_and_the_same_command_again_waits_for_those_jobs(tmp_path):
    """--no-wait returns once everything is queued; run again, the sweep waits for the queued jobs (jobs.json)
    instead of submitting them a second time, and every stage run executes once."""
    from collections import Counter

    from test_sweep_graph import records, stand_in_notebooks, tiny_config

    from sharedrep_utils import sweep

    notebooks = stand_in_notebooks(tmp_path / "notebooks")
    run = tmp_path / "run"
    run.mkdir()
    cfg = tiny_config(run, **{"sweep.seeds": [1]})
    first: list[str] = []
    sweep.run_sweep(cfg, {}, notebooks=notebooks, log=first.append, executor="slurm", wait=False)
    queued = json.loads((run / "slurm" / "jobs.json").read_text())
    assert len(queued) == 9 and sum(line.startswith("[submitted]") for line in first) == 9
    again: list[str] = []
    sweep.run_sweep(cfg, {}, notebooks=notebooks, log=again.append, executor="slurm")
    reattached = [line.split()[1].rstrip(":") for line in again if line.endswith("(submitted earlier)")]
    assert "06_results" in reattached  # it waits for everything: still queued when the command ran again
    for label in reattached:
        assert json.loads((run / "slurm" / "jobs.json").read_text())[label] == queued[label]
    counts = Counter(r["label"] for r in records(run))
    assert all(counts[label] == 1 for label in reattached) and counts["06_results"] == 1
