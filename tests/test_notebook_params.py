"""A notebook's own parameters (seed, proportion, method, overrides, run_dir) are checked like the sweep's,
before any work, and papermill's and JupyterLab's ways of passing them are met."""

import json
from pathlib import Path

import pytest
from sweep_helpers import ROOT

from sharedrep_utils.config import ConfigError, notebook_config

NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def test_overrides_may_come_as_the_string_papermill_passes(tmp_path):
    cfg = notebook_config("smoke", '{"run_dir": "%s", "grpo.beta": 0.2}' % (tmp_path / "r"))
    assert cfg.grpo.beta == 0.2 and cfg.run_path == tmp_path / "r"
    assert notebook_config("smoke", "grpo.beta: 0.3").grpo.beta == 0.3  # YAML too
    assert notebook_config("smoke", "").grpo.beta == notebook_config("smoke", {}).grpo.beta


@pytest.mark.parametrize("text", ["runs/mine", "[1, 2]", "{unclosed"])
def test_an_override_string_that_is_no_mapping_is_refused_showing_the_y_form(text):
    with pytest.raises(ConfigError, match=r"is not a mapping; pass it with papermill's -y") as info:
        notebook_config("smoke", text)
    assert "\n" not in str(info.value) and """-y '{"overrides": {""" in str(info.value)


def test_a_relative_run_dir_is_taken_from_the_repository_root_not_notebooks(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT / "notebooks")  # where papermill and JupyterLab run a notebook
    cfg = notebook_config("smoke", {"run_dir": "runs/mine"})
    assert cfg.run_path == ROOT / "runs" / "mine"
    assert notebook_config("smoke", {"run_dir": str(tmp_path)}).run_path == tmp_path  # absolute as given


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"seed": -1}, "Seed -1 is negative"),
        ({"seed": 1.5}, "Seed 1.5 is not a whole number"),
        ({"proportion": 1.5}, "Minority proportion 1.5 is outside (0, 1)"),
        ({"proportion": 0}, "Minority proportion 0 is outside (0, 1)"),
        ({"method": "sharedrep-k3"}, "Unknown policy method 'sharedrep-k3'; allowed: sft, gold, maxmin, sharedrep-k2"),
        ({"method": "sft", "methods_allowed": ("gold",)}, "Unknown policy method 'sft'; allowed: gold, maxmin"),
    ],
)
def test_notebook_seed_proportion_and_method_get_the_sweeps_checks(kwargs, needle):
    with pytest.raises(ConfigError) as info:
        notebook_config("smoke", {}, **kwargs)
    assert needle in str(info.value)


def test_a_bad_notebook_parameter_stops_before_any_work_and_creates_no_run_dir(tmp_path):
    """`papermill notebooks/02_preference_data.ipynb out.ipynb -y 'proportion: 1.5'` must not sample responses."""
    import papermill as pm

    run_dir = tmp_path / "run"
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(
            str(ROOT / "notebooks" / "02_preference_data.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"proportion": 1.5, "overrides": json.dumps({"run_dir": str(run_dir)})},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(ROOT / "notebooks"),
        )
    assert info.value.ename == "ConfigError" and "1.5 is outside (0, 1)" in info.value.evalue
    assert not run_dir.exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_open_clean_in_jupyterlab(path):
    """Committed without outputs, and with the kernelspec and language_info the installed ipykernel announces,
    so opening a notebook does not mark it modified (JupyterLab writes the kernel's language_info into the file
    once the kernel starts, and autosave would then rewrite a tracked file; test_browser_lab checks it in a
    browser)."""
    from ipykernel.ipkernel import IPythonKernel
    from ipykernel.kernelspec import get_kernel_dict

    nb = json.loads(path.read_text())
    spec = get_kernel_dict()
    assert nb["metadata"]["kernelspec"] == {
        "display_name": spec["display_name"],
        "language": spec["language"],
        "name": "python3",
    }
    # as the kernel reports it, but for the interpreter's patch version (JupyterLab rewrites that on open)
    without_version = {k: v for k, v in IPythonKernel.language_info.items() if k != "version"}
    assert {k: v for k, v in nb["metadata"]["language_info"].items() if k != "version"} == without_version
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert "parameters" in code[0]["metadata"].get("tags", [])  # the first code cell is papermill's


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if not p.stem.startswith("00")], ids=lambda p: p.stem)
def test_every_stage_notebook_checks_its_parameters_and_runs_stages_through_launch(path):
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert "notebook_config(profile, overrides" in code and "load_config(" not in code
    for name in ("seed", "proportion", "method"):
        if f"\n{name} = " in "\n" + code.split("notebook_config")[0]:
            assert f"{name}={name}" in code, f"{path.name} does not check its {name}"
    runs_a_stage = not path.stem.startswith("07")  # 07_browse_completions only reads a finished run
    assert ".main(" not in code and ("launch(cfg, " in code) == runs_a_stage  # one way to call a stage


def test_sharedrep_without_a_command_prints_its_help(capsys):
    from sharedrep_utils.cli import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: sharedrep" in out and "run" in out and "bench" in out


def test_run_help_shows_defaults_and_an_example(capsys):
    from sharedrep_utils.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: smoke)" in out and "example: sharedrep run --profile smoke" in out
    assert "(default: None)" not in out


def test_a_sweep_stopped_by_a_busy_stage_keeps_the_other_sweeps_executed_notebook(tmp_path, monkeypatch):
    import papermill as pm

    from sharedrep_utils import sweep
    from sharedrep_utils.config import load_config

    cfg = load_config("smoke", {"run_dir": str(tmp_path / "run")})
    executed = tmp_path / "run" / "notebooks" / "01_sft.ipynb"
    executed.parent.mkdir(parents=True)
    executed.write_text("the other sweep's record")

    def busy(source, output, **kwargs):
        Path(output).write_text("this sweep's failed attempt")
        raise pm.PapermillExecutionError(0, 1, "launch(...)", "StageBusy", "01_sft is busy", [])

    monkeypatch.setattr(pm, "execute_notebook", busy)
    with pytest.raises(pm.PapermillExecutionError):
        sweep.run_sweep(cfg, {}, log=lambda line: None)
    assert executed.read_text() == "the other sweep's record"
    assert [p.name for p in executed.parent.iterdir()] == ["01_sft.ipynb"]  # no draft left behind

    def fails(source, output, **kwargs):
        Path(output).write_text("a real failure, error included")
        raise pm.PapermillExecutionError(0, 1, "launch(...)", "ValueError", "bad", [])

    monkeypatch.setattr(pm, "execute_notebook", fails)
    with pytest.raises(pm.PapermillExecutionError):
        sweep.run_sweep(cfg, {}, log=lambda line: None)
    assert executed.read_text() == "a real failure, error included"  # kept for a person to read


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter_of_the_parameters_cell(path, caplog):
    """`papermill --help-notebook` and its parameter checks read the parameters cell line by line; a line it cannot
    parse (an `=` in a comment does it) hides that parameter from a batch user ("Passed unknown parameter")."""
    import ast

    import papermill as pm

    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assigned = [t.id for node in ast.parse("".join(cell["source"])).body for t in getattr(node, "targets", [])]
    with caplog.at_level("WARNING", logger="papermill"):
        seen = list(pm.inspect_notebook(str(path)))
    assert seen == assigned and "Unable to parse" not in caplog.text


def test_set_parameters_injects_papermills_cell_after_the_parameters_cell(tmp_path):
    """What the browser tests open in JupyterLab: papermill's injected-parameters cell, right after the parameters."""
    import nbformat

    from sharedrep_utils import lab_driver

    out = lab_driver.set_parameters(NOTEBOOKS[-1], tmp_path / "nb.ipynb", {"overrides": {"run_dir": "/x"}})
    cells = nbformat.read(out, as_version=4).cells
    tagged = [i for i, c in enumerate(cells) if c.metadata.get("tags")]
    first = tagged[0]
    assert cells[first].metadata.tags == ["parameters"] and cells[first + 1].metadata.tags == ["injected-parameters"]
    assert "overrides = {\"run_dir\": \"/x\"}" in cells[first + 1].source
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(bare, tmp_path / "bare.ipynb")
    with pytest.raises(ValueError, match="no cell tagged parameters"):
        lab_driver.set_parameters(tmp_path / "bare.ipynb", tmp_path / "bare-out.ipynb", {"x": 2})
    assert not (tmp_path / "bare-out.ipynb").exists()
