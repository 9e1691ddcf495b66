"""The sweep's graph (`graph.py`), `sharedrep plan`, and the local executors (`executors.py`) on stand-in
notebooks: each records when it ran, in which kernel and with how many threads, and sleeps a little, so
that order, parallelism and failure handling can be checked in seconds without training anything."""

import json
import os
from pathlib import Path

import nbformat
import pytest

from sharedrep_utils import cli, executors, sweep
from sharedrep_utils.config import load_config
from sharedrep_utils.graph import build_graph

STAGES = ("01_sft", "02_preference_data", "03_reward_models", "04_grpo", "05_evaluate", "06_results")
TINY = {"sweep.seeds": [1, 2], "sweep.proportions": [0.1], "reward_model.methods": ["maxmin"], "reward_model.ks": [2]}


def tiny_config(run_dir: Path, **extra):
    return load_config("smoke", {**TINY, "run_dir": str(run_dir), **extra})


def needs_of(cfg) -> dict[str, tuple[str, ...]]:
    return {n.label: n.needs for n in build_graph(cfg, {"profile": "smoke", "overrides": {}})}


def test_the_graph_of_a_two_seed_sweep_written_out_by_hand(tmp_path):
    """2 seeds x 1 proportion x MaxMin: every stage run and what it waits for, spelled out."""
    graph = needs_of(tiny_config(tmp_path / "run"))
    prefs1, prefs2 = "02_preference_data-seed1-prop0.1", "02_preference_data-seed2-prop0.1"
    expected = {
        "01_sft": (),
        prefs1: ("01_sft",),
        prefs2: (prefs1,),  # the first 02 run samples the responses every 02 run reads
        "03_reward_models-seed1-prop0.1": (prefs1,),
        "03_reward_models-seed2-prop0.1": (prefs2,),
        "04_grpo-seed1-gold": ("01_sft",),
        "04_grpo-seed1-prop0.1-maxmin": ("03_reward_models-seed1-prop0.1",),
        "04_grpo-seed2-gold": ("01_sft",),
        "04_grpo-seed2-prop0.1-maxmin": ("03_reward_models-seed2-prop0.1",),
        "05_evaluate-sft": ("01_sft",),
        "05_evaluate-seed1-gold": ("04_grpo-seed1-gold", "05_evaluate-sft"),
        "05_evaluate-seed1-prop0.1-maxmin": ("04_grpo-seed1-prop0.1-maxmin", "05_evaluate-sft"),
        "05_evaluate-seed2-gold": ("04_grpo-seed2-gold", "05_evaluate-sft"),
        "05_evaluate-seed2-prop0.1-maxmin": ("04_grpo-seed2-prop0.1-maxmin", "05_evaluate-sft"),
    }
    results = graph.pop("06_results")
    assert graph == expected
    assert set(results) == {x for x in expected if x.startswith(("03_", "05_"))}
    # without an SFT evaluation the policies' evaluations wait only for their own policy
    no_sft = needs_of(tiny_config(tmp_path / "run", **{"sweep.evaluate_sft": False}))
    assert no_sft["05_evaluate-seed1-gold"] == ("04_grpo-seed1-gold",) and "05_evaluate-sft" not in no_sft


def test_plan_prints_every_stage_run_what_it_waits_for_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["plan", "--profile", "smoke", "--seeds", "1", "2", "--proportions", "0.1", "--methods", "maxmin",
            "--ks", "2", "--run-dir", str(run)]  # fmt: skip
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:-1]]
    assert len(rows) == 15 and lines[-1] == "15 stage runs: 0 done, 15 to run"
    by_label = {row[1]: row for row in rows}
    assert by_label["03_reward_models-seed2-prop0.1"][2:] == ["to", "run", "waits", "for:",
                                                              "02_preference_data-seed2-prop0.1"]  # fmt: skip
    assert lines[-2].endswith("waits for: 7 runs (03_reward_models, 05_evaluate)")
    assert not run.exists()
    with pytest.raises(SystemExit) as bad:  # argparse's usage error: one line, exit 2
        cli.main(["plan", "--profile", "smoke", "--seeds", "x"])
    assert bad.value.code == 2
    assert cli.main(["plan", "--profile", "smoke", "--proportions", "1.5", "--run-dir", str(run)]) == 2
    assert "1.5" in capsys.readouterr().err and not run.exists()


# --- the local executors on stand-in notebooks ----------------------------------------------------------------

# the label as graph.py names the stage run: <notebook>[-seed<S>-prop<P>][-<method>], gold per seed, sft alone
RECORD = """\
import json, os, time
label = "{stage}"
if method == "sft":
    label += "-sft"
elif method == "gold":
    label += f"-seed{{seed}}-gold"
elif seed is not None:
    label += f"-seed{{seed}}-prop{{proportion:g}}" + (f"-{{method}}" if method else "")
start = time.time()
if label in overrides.get("fail", []):
    raise ValueError(f"planned failure in {{label}}")
time.sleep({sleep})
with open(os.path.join(overrides["run_dir"], "record.jsonl"), "a") as log:
    log.write(json.dumps({{"label": label, "start": start, "end": time.time(), "pid": os.getpid(),
                          "threads": os.environ.get("OMP_NUM_THREADS")}}) + "\\n")
"""


def stand_in_notebooks(folder: Path) -> Path:
    folder.mkdir()
    for stage in STAGES:
        defaults = 'profile = "smoke"\noverrides = {}\nseed = None\nproportion = None\nmethod = None'
        params = nbformat.v4.new_code_cell(defaults)
        params.metadata["tags"] = ["parameters"]
        sleep = 2.5 if stage == "04_grpo" else 0.2
        body = nbformat.v4.new_code_cell(RECORD.format(stage=stage, sleep=sleep))
        book = nbformat.v4.new_notebook(cells=[params, body])
        book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(book, folder / f"{stage}.ipynb")
    return folder


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "record.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    return stand_in_notebooks(tmp_path_factory.mktemp("nb") / "notebooks")


def test_two_jobs_run_independent_stage_runs_at_once_and_keep_the_graph_order(tmp_path, notebooks):
    run = tmp_path / "run"
    run.mkdir()
    cfg = tiny_config(run)
    lines = []
    report = sweep.run_sweep(cfg, {}, notebooks=notebooks, log=lines.append, jobs=2)
    assert [status for _, status, _ in report] == ["ran"] * 15
    seen = records(run)
    assert len(seen) == 15
    # every stage run started after everything it waits for had ended
    at = {r["label"]: r for r in seen}
    for node in build_graph(cfg, {}):
        for need in node.needs:
            assert at[node.label]["start"] >= at[need]["end"], (node.label, need)
    # the four GRPO runs (2.5 s each) overlapped: two at a time
    grpo = sorted((r["start"], r["end"]) for r in seen if r["label"].startswith("04_grpo"))
    assert any(b[0] < a[1] for a, b in zip(grpo, grpo[1:]))
    # two workers, each one kernel for all its notebooks, each with half the cores' threads
    assert len({r["pid"] for r in seen}) == 2
    assert {r["threads"] for r in seen} == {str(max(1, (os.cpu_count() or 1) // 2))}
    log = json.loads((run / "notebooks" / "sweep_log.json").read_text())
    assert [s["status"] for s in log["steps"]] == ["ran"] * 15 and log["cpu_s"] > 0
    assert all(s["wall_s"] > 0 and s["peak_rss_mb"] > 0 and s["cpu_s"] is not None for s in log["steps"])
    assert sorted(p.name for p in (run / "notebooks").iterdir()) == sorted(
        [f"{n.label}.ipynb" for n in build_graph(cfg, {})] + ["sweep_log.json"]
    )  # one executed notebook per stage run, no draft left
    assert any(line.startswith("[15/15] 06_results: finished") for line in lines)
    assert any("running: " in line and "left" in line for line in lines)


def test_a_failure_stops_new_work_lets_running_ones_finish_and_names_the_notebook(tmp_path, notebooks):
    run = tmp_path / "run"
    run.mkdir()
    cfg = tiny_config(run)
    failing = "04_grpo-seed1-gold"
    with pytest.raises(executors.StageFailed) as caught:
        sweep.run_sweep(cfg, {"fail": [failing]}, notebooks=notebooks, log=lambda line: None, jobs=2)
    error = caught.value
    assert error.label == "04_grpo-seed1-gold" and error.ename == "ValueError"
    assert error.evalue == f"planned failure in {failing}"
    assert error.notebook == run / "notebooks" / "04_grpo-seed1-gold.ipynb" and "planned failure" in (
        error.notebook.read_text()
    )
    done = {r["label"] for r in records(run)}
    assert "06_results" not in done and "05_evaluate-seed1-gold" not in done
    assert not list((run / "notebooks").glob(".drafts*"))


def test_one_job_is_the_serial_sweep_in_one_kernel(tmp_path, notebooks):
    run = tmp_path / "run"
    run.mkdir()
    cfg = tiny_config(run, **{"reward_model.methods": ["sharedrep"]})  # K = 2 = U: the rank notice, once
    lines = []
    report = sweep.run_sweep(cfg, {}, notebooks=notebooks, log=lines.append)
    assert sum(line.startswith("K >= U: with U = 2 groups, SharedRep's rank K = 2") for line in lines) == 1
    seen = records(run)
    assert [r[0] for r in report] == [n.label for n in build_graph(cfg, {})]
    assert "04_grpo-seed1-prop0.1-sharedrep-k2" in {r["label"] for r in seen}
    assert len({r["pid"] for r in seen}) == 1  # one shared kernel
    assert [r["start"] for r in seen] == sorted(r["start"] for r in seen)  # one at a time, in the graph's order
    assert all(b["start"] >= a["end"] for a, b in zip(seen, seen[1:]))
    log = json.loads((run / "notebooks" / "sweep_log.json").read_text())
    assert log["kernel"] == "one shared kernel" and log["cpu_s"] > 0


def test_worker_slots_split_cores_or_give_each_job_its_gpus():
    envs, _ = executors.worker_slots(3, 1, cores=8, gpus=[])
    assert [e["OMP_NUM_THREADS"] for e in envs] == ["2", "2", "2"]
    envs, _ = executors.worker_slots(4, 1, cores=16, gpus=["0", "1", "2", "3", "4", "5", "6", "7"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "2", "3"]
    envs, _ = executors.worker_slots(8, 2, cores=16, gpus=["0", "1", "2", "3", "4", "5"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0,1", "2,3", "4,5"]  # 3 jobs of 2 GPUs fit in 6
    assert [e["OMP_NUM_THREADS"] for e in envs] == ["5", "5", "5"]
    with pytest.raises(ValueError, match="--gpus-per-job 4 is more than the 2 visible"):
        executors.worker_slots(1, 4, cores=4, gpus=["0", "1"])


def test_progress_estimates_what_is_left_from_the_stage_runs_seen(tmp_path):
    from sharedrep_utils.graph import StageRun
    from sharedrep_utils.notebook_run import SweepLog

    def progress(jobs, done_at_start=frozenset()):
        return executors.Progress(5, jobs, lines.append, SweepLog(tmp_path, "k"), report, done_at_start)

    lines, report = [], []
    seen = progress(2)
    seen.ran(StageRun("04_grpo-a", "04_grpo", {}), {"label": "04_grpo-a", "status": "ran", "wall_s": 10.0}, [], [])
    seen.ran(StageRun("05_evaluate-a", "05_evaluate", {}), {"label": "05_evaluate-a", "status": "ran", "wall_s": 2.0,
                                                            "peak_rss_mb": 812.4}, [], [])  # fmt: skip
    waiting = [StageRun("04_grpo-b", "04_grpo", {}), StageRun("05_evaluate-b", "05_evaluate", {}),
               StageRun("06_results", "06_results", {})]  # fmt: skip
    # (10 + 2 + mean 6 for an unseen notebook) / 2 jobs = 9 s; one running counts half the overall mean: +1.5
    assert seen.estimate_left(waiting, 0) == pytest.approx(9.0)
    assert seen.estimate_left(waiting, 1) == pytest.approx(10.5)
    assert lines[0] == "[1/5] 04_grpo-a: finished in 10.0s"
    assert lines[2] == "[2/5] 05_evaluate-a: finished in 2.0s, peak 812 MB"
    # what the sweep keeps: a report row and a sweep_log record per stage run
    assert report == [("04_grpo-a", "ran", 10.0), ("05_evaluate-a", "ran", 2.0)]
    assert [s["label"] for s in json.loads((tmp_path / "sweep_log.json").read_text())["steps"]] == [
        "04_grpo-a", "05_evaluate-a"]  # fmt: skip
    # a resumed sweep: a stage run done at the start will be skipped, not run: (10 + 6) / 2 = 8 s
    resumed = progress(2, {"05_evaluate-b"})
    resumed.walls = seen.walls
    assert resumed.estimate_left(waiting, 0) == pytest.approx(8.0)
    resumed.skipped("05_evaluate-b")
    assert report[-1] == ("05_evaluate-b", "skipped", 0.0) and lines[-1] == "[1/5] 05_evaluate-b: done already, skipped"
    # SLURM (jobs None): shared by as many as run now, at least one
    slurm = progress(None)
    slurm.walls = seen.walls
    assert slurm.estimate_left(waiting, 0) == pytest.approx(18.0)
    assert slurm.estimate_left(waiting, 3) == pytest.approx((18.0 + 1.5 * 6) / 3)


def test_slurm_waiting_leaves_out_the_running_jobs():
    """The estimate counts running jobs half done, apart: listing them as waiting too counted them twice."""
    from sharedrep_utils import slurm
    from sharedrep_utils.graph import Node, StageRun

    by_label = {x: Node(StageRun(x, "04_grpo", {}), (), lambda: False) for x in ("a", "b", "c")}
    pending = {"a": object(), "b": object(), "c": object()}
    assert [r.label for r in slurm.waiting(pending, ["b"], by_label)] == ["a", "c"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_resumed_sweep_tells_progress_what_it_will_skip(tmp_path, monkeypatch, jobs):
    """The serial and the pool executor hand Progress the stage runs done at the start (left out of the estimate),
    and record each one skipped."""
    from sharedrep_utils.graph import Node, StageRun
    from sharedrep_utils.notebook_run import SweepLog

    seen = {}

    class Recording(executors.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["done_at_start"] = self.done_at_start

    monkeypatch.setattr(executors, "Progress", Recording)
    nodes = [Node(StageRun(f"04_grpo-{i}", "04_grpo", {}), (), lambda: True) for i in range(3)]
    report, lines = [], []
    args = (nodes, tmp_path, tmp_path, "python3", SweepLog(tmp_path, "k"), report, lines.append)
    executors.run_serial(*args) if jobs == 1 else executors.run_pool(*args, jobs=jobs)
    assert seen["done_at_start"] == {"04_grpo-0", "04_grpo-1", "04_grpo-2"}
    assert report == [(f"04_grpo-{i}", "skipped", 0.0) for i in range(3)]
