"""The completion browser's logic (sharedrep_utils/browser.py) on a tiny finished run written here with scores
chosen by hand, and notebook 07 under papermill: the static view, and one line for a run that is not ready."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from sweep_helpers import ROOT

from sharedrep_utils import browser
from sharedrep_utils.config import load_config
from sharedrep_utils.runs import eval_file, policy_id, sft_dir, stage_output

SEED, PROP = 1, 0.1
GROUPS = {"minority": {"neutral": 0.7, "harmless": 0.3}, "majority": {"upbeat": 0.7, "harmless": 0.3}}  # smoke's
# (minority, majority, training reward) per prompt a, b, c; sft has no training reward of its own
SCORES = {
    "sft": [(0.2, 0.4, None), (0.5, 0.5, None), (0.3, 0.3, None)],
    "gold": [(0.6, 0.7, 0.6), (0.6, 0.6, 0.6), (0.6, 0.6, 0.6)],
    "maxmin": [(0.1, 0.9, 0.5), (0.5, 0.5, 0.1), (0.2, 0.8, 0.2)],
    "sharedrep-k2": [(0.3, 0.5, 0.7), (0.5, 0.5, 0.2), (0.1, 0.9, 0.3)],
    "sharedrep-k16": [(0.4, 0.2, 0.8), (0.9, 0.9, 0.3), (0.15, 0.9, 0.4)],
    "uniform": [(0.3, 0.3, 0.9), (0.5, 0.6, 0.4), (0.25, 0.9, 0.5)],
}
# By hand: min over groups per prompt (a, b, c)
#   maxmin .1 .5 .2 | k2 .3 .5 .1 | k16 .2 .9 .15 | uniform .3 .5 .25
#   spread over the four: a .2, b .4, c .15 -> "disagreement" = b; without K=16: a .2, b 0, c .15 -> a
#   minority mean over the four: a .275, b .6, c .175 -> "worst for the minority" = c
IDS = ["a", "b", "c"]


def write_run(run_dir, policies=SCORES, groups=GROUPS):
    """Evaluation files (in reverse prompt order: matching is by id) with the manifests the stages write."""
    with stage_output(sft_dir(run_dir), "sft", {}) as stage:
        stage["extra"]["data_source"] = "test"
    for method, rows in policies.items():
        seed = None if method == "sft" else SEED
        prop = PROP if method not in ("sft", "gold") else None
        pid = policy_id(seed, prop, method)
        table = pd.DataFrame(
            {
                "prompt_id": IDS[::-1],
                "prompt": [f"\n\nHuman: question {i}?\n\nAssistant:" for i in IDS[::-1]],
                "completion": [f"{method} says {i}\nsecond line" for i in IDS[::-1]],
                **{f"group_{g}": [r[j] for r in rows[::-1]] for j, g in enumerate(groups)},
            }
        )
        if method != "sft":
            table["training_reward"] = [r[2] for r in rows[::-1]]
            table["sft_training_reward"] = [0.05, 0.15, 0.25][::-1]
        table["policy_id"], table["method"], table["seed"], table["proportion"] = pid, method, seed, prop
        with stage_output(eval_file(run_dir, pid), "evaluate", {"groups": groups}, seed=seed) as stage:
            table.to_parquet(stage["path"] / eval_file(run_dir, pid).name, index=False)


def config(run_dir, **overrides):
    return load_config("smoke", {"run_dir": str(run_dir), **overrides})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("browse") / "run"
    write_run(path)
    return path


@pytest.fixture
def run(run_dir):
    return browser.open_run(config(run_dir))


def test_the_view_puts_every_policy_side_by_side_with_sft_first_as_the_reference(run):
    view = browser.side_by_side(run, SEED, PROP, "a")
    assert list(view["policy"]) == [
        "SFT (reference)", "Gold", "MaxMin", "SharedRep K=2", "SharedRep K=16", "Uniform"
    ]
    assert list(view["completion"])[2] == "maxmin says a\nsecond line"
    assert list(view["gold minority"]) == pytest.approx([0.2, 0.6, 0.1, 0.3, 0.4, 0.3])
    assert list(view["gold majority"]) == pytest.approx([0.4, 0.7, 0.9, 0.5, 0.2, 0.3])
    assert list(view["min over groups"]) == pytest.approx([0.2, 0.6, 0.1, 0.3, 0.2, 0.3])
    assert list(view["min vs SFT"]) == pytest.approx([0.0, 0.4, -0.1, 0.1, 0.0, 0.1])
    assert view["training reward"].iloc[0] != view["training reward"].iloc[0]  # SFT: none (NaN)
    assert list(view["training reward"])[1:] == pytest.approx([0.6, 0.5, 0.7, 0.8, 0.9])
    assert list(view["SFT's training reward"])[1:] == pytest.approx([0.05] * 5)


def test_filters_by_method_and_k_keep_sft_as_the_reference(run):
    view = browser.side_by_side(run, SEED, PROP, "c", methods=["sharedrep"], ks=[16])
    assert list(view["policy"]) == ["SFT (reference)", "SharedRep K=16"]
    assert list(view["min over groups"]) == pytest.approx([0.3, 0.15])
    view = browser.side_by_side(run, SEED, PROP, "c", ks=[2])
    assert "SharedRep K=16" not in set(view["policy"]) and "SharedRep K=2" in set(view["policy"])


def test_prompt_picks_follow_their_definitions_on_hand_computed_scores(run):
    assert browser.pick_prompt(run, SEED, PROP, browser.DISAGREEMENT) == "b"
    assert browser.pick_prompt(run, SEED, PROP, browser.DISAGREEMENT, ks=[2]) == "a"  # K=16 made b disagree
    assert browser.pick_prompt(run, SEED, PROP, browser.MINORITY) == "c"
    # only MaxMin shown: the minority's scores a .1, b .5, c .2 -> a
    assert browser.pick_prompt(run, SEED, PROP, browser.MINORITY, methods=["maxmin"]) == "a"
    assert browser.pick_prompt(run, SEED, PROP, "b") == "b"


def test_random_prompts_are_drawn_from_the_seed_and_the_draw(run):
    draws = [browser.pick_prompt(run, SEED, PROP, browser.RANDOM, draw=d) for d in range(12)]
    assert draws == [browser.pick_prompt(run, SEED, PROP, browser.RANDOM, draw=d) for d in range(12)]
    assert set(draws) <= set(IDS) and len(set(draws)) > 1


def test_choices_the_run_cannot_show_are_refused_in_one_sentence(run):
    with pytest.raises(browser.BrowseError, match=r"Prompt 'zz' is neither a prompt id .* \(a, b, c\)"):
        browser.pick_prompt(run, SEED, PROP, "zz")
    with pytest.raises(browser.BrowseError, match="needs two or more reward-model policies"):
        browser.pick_prompt(run, SEED, PROP, browser.DISAGREEMENT, methods=["maxmin", "gold"])
    with pytest.raises(browser.BrowseError, match=r"Seed 7 is not in run .*; its seeds: 1\."):
        browser.static_view(run, 7, None)
    with pytest.raises(browser.BrowseError, match=r"Proportion 0.5 is not in run .*; its proportions: 0.1\."):
        browser.static_view(run, None, 0.5)


def test_the_static_view_is_the_same_view_as_text(run):
    text = browser.static_view(run, None, None, browser.MINORITY)
    assert text.splitlines()[0] == "seed 1, minority proportion 0.1, prompt c (worst for the minority)"
    assert "Prompt: Human: question c? ⏎  ⏎ Assistant:" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "says" in line]
    assert len(rows) == 6 and rows[0].startswith("| SFT (reference) | sft says c ⏎ second line")
    cells = [c.strip() for c in rows[4].strip("|").split("|")]
    assert cells == ["SharedRep K=16", "sharedrep-k16 says c ⏎ second line", "0.150", "0.900", "0.150", "-0.150",
                     "0.400", "0.250"]


def test_the_widget_view_changes_with_its_controls(run):
    pytest.importorskip("ipywidgets")
    ui = browser.browser_widget(run)
    controls, out = ui.children
    pick = next(w for w in controls.children[1].children if "sharedrep-pick" in w._dom_classes)
    k16 = next(w for w in controls.children[2].children if "sharedrep-filter-16" in w._dom_classes)
    assert "prompt b (largest disagreement" in out.value and "SharedRep K=16" in out.value
    pick.value = browser.MINORITY
    assert "prompt c (worst for the minority)" in out.value
    k16.value = False
    assert "SharedRep K=16" not in out.value and "SharedRep K=2" in out.value
    assert "sharedrep-k2 says c" in out.value and "&lt;" not in out.value
    assert "prompt a</b>" in browser.browser_widget(run, pick="a").children[1].value  # a prompt id: no pick named
    with pytest.raises(browser.BrowseError, match="Prompt 'zz' is neither"):
        browser.browser_widget(run, pick="zz")


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: None, "does not exist: make it with `sharedrep run --profile smoke --run-dir"),
        (lambda d: d.mkdir(), "has no finished evaluation (eval/<policy>.parquet with its manifest): run 01_sft first"),
        (
            lambda d: write_run(d, policies={}),
            "has no finished evaluation (eval/<policy>.parquet with its manifest): run 04_grpo and 05_evaluate first",
        ),
        (lambda d: write_run(d, policies={"sft": SCORES["sft"]}), "has evaluations of sft only: run 04_grpo"),
        (
            lambda d: write_run(d, groups={"a": {"x": 1.0}, "b": {"y": 1.0}}),
            "was scored for groups a, b, but profile 'smoke' has groups majority, minority: set `profile`",
        ),
        (
            lambda d: write_run(d, groups={"minority": {"neutral": 1.0}, "majority": {"upbeat": 1.0}}),
            "was scored with group weights {'minority': {'neutral': 1.0}",
        ),
    ],
    ids=["missing", "empty", "no-eval", "sft-only", "other-groups", "other-weights"],
)
def test_a_run_that_is_not_ready_is_said_in_one_line_naming_the_stage(tmp_path, make, needle):
    make(tmp_path / "run")
    with pytest.raises(browser.RunNotReady) as info:
        browser.open_run(config(tmp_path / "run"))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_half_written_evaluation_is_not_read(tmp_path):
    write_run(tmp_path / "run", policies={"sft": SCORES["sft"], "maxmin": SCORES["maxmin"]})
    (tmp_path / "run" / "eval" / "seed1-prop0.1-maxmin.manifest.json").unlink()  # as if killed before it
    with pytest.raises(browser.RunNotReady, match="has evaluations of sft only"):
        browser.open_run(config(tmp_path / "run"))


def test_the_browser_imports_no_training_stack():
    code = "import sys, sharedrep_utils.browser; print(sorted({'torch', 'transformers', 'trl'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _papermill(tmp_path, overrides, **params):
    import papermill as pm

    return pm.execute_notebook(
        str(ROOT / "notebooks" / "07_browse_completions.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={"overrides": json.dumps(overrides), **params},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(ROOT / "notebooks"),
    )


def test_notebook_07_under_papermill_prints_the_static_view_and_one_line_for_a_missing_run(tmp_path, run_dir):
    import papermill as pm

    nb = _papermill(tmp_path, {"run_dir": str(run_dir)}, prompt=browser.MINORITY, interactive=False)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "seed 1, minority proportion 0.1, prompt c (worst for the minority)" in text
    assert "| Uniform         | uniform says c ⏎ second line" in text
    with pytest.raises(pm.PapermillExecutionError) as info:
        _papermill(tmp_path, {"run_dir": str(tmp_path / "nowhere")})
    assert info.value.ename == "RunNotReady" and "does not exist" in info.value.evalue
    failed = json.loads((tmp_path / "out.ipynb").read_text())
    outputs = [o for c in failed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert len(errors) == 1 and len(errors[0]["traceback"]) == 1  # the message, no traceback
    assert errors[0]["traceback"][0].startswith("RunNotReady: Run directory ")


def test_an_empty_completion_is_said_not_left_blank(run):
    view = browser.side_by_side(run, SEED, PROP, "a")
    view.loc[2, "completion"] = ""
    assert browser.view_html(run, view, "a", "t").count(browser.EMPTY) == 1
