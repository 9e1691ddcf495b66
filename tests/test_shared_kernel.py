"""One kernel for all the notebooks of a sweep (`sweep.SharedKernel`): started once, reset before each
notebook so that none sees another's variables, shut down at the end."""

import json
from pathlib import Path

import nbformat
import papermill as pm
import psutil
import pytest

from sharedrep_utils.sweep import SharedKernel, _cells_seconds


def notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("tag = 'default'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# a test"), params, *map(nbformat.v4.new_code_cell, sources)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def outputs(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]


def test_notebooks_share_one_kernel_but_not_their_variables(tmp_path):
    first = notebook(tmp_path / "first.ipynb", "import os, json\nleft_over = 1\nprint(os.getpid())")
    second = notebook(
        tmp_path / "second.ipynb",
        "import os\nprint(os.getpid())",
        "print(sorted(k for k in ('left_over', 'json') if k in globals()), tag)",
    )
    shared = SharedKernel("python3")
    try:
        for source, tag in [(first, "one"), (second, "two")]:
            pm.execute_notebook(
                str(source), str(tmp_path / f"out-{source.name}"), parameters={"tag": tag}, kernel_name="python3",
                progress_bar=False, cwd=str(tmp_path), **shared.engine_kwargs(),
            )  # fmt: skip
        assert shared.km.has_kernel
    finally:
        shared.shutdown()
    one, two = outputs(tmp_path / "out-first.ipynb"), outputs(tmp_path / "out-second.ipynb")
    assert one[0] == two[0]  # the same kernel process ran both
    assert not shared.km.has_kernel and not psutil.pid_exists(int(one[0]))  # and it is gone
    assert two[1].strip() == "[] two"  # nothing left from the first notebook; its own parameter injected
    counts = [c.get("execution_count") for c in json.loads((tmp_path / "out-second.ipynb").read_text())["cells"]]
    assert [c for c in counts if c is not None] == [1, 2, 3, 4]  # numbered as in a fresh kernel
    assert _cells_seconds(tmp_path / "out-second.ipynb") == pytest.approx(
        sum(
            c["metadata"]["papermill"]["duration"]
            for c in json.loads((tmp_path / "out-second.ipynb").read_text())["cells"]
            if c["metadata"].get("papermill", {}).get("duration") is not None
        )
    )


def test_a_failing_notebook_leaves_its_error_and_shutdown_still_ends_the_kernel(tmp_path):
    bad = notebook(tmp_path / "bad.ipynb", "raise ValueError('bad cell')")
    shared = SharedKernel("python3")
    try:
        with pytest.raises(pm.PapermillExecutionError, match="bad cell"):
            pm.execute_notebook(
                str(bad), str(tmp_path / "out.ipynb"), kernel_name="python3", progress_bar=False,
                cwd=str(tmp_path), **shared.engine_kwargs(),
            )  # fmt: skip
    finally:
        shared.shutdown()
    assert not shared.km.has_kernel
    assert "bad cell" in (tmp_path / "out.ipynb").read_text()
    SharedKernel().shutdown()  # never started: nothing to do
