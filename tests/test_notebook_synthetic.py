"""Notebook 00 (the synthetic check) runs top to bottom with papermill on a small problem: every cell, its
tables and its figures, the budget section included. Its logic is tested in test_synthetic.py; this checks
that the notebook still calls it as the functions now are."""

import nbformat
import pytest
from sweep_helpers import ROOT

SMALL = {
    "seeds": [0, 1],
    "proportions": [0.05, 0.2],
    "n_pairs_grid": [200, 500],
    "n_pairs_fixed": 500,
    "proportion_fixed": 0.05,
    "d": 16,
    "n_test_pairs": 200,
}


@pytest.mark.integration
def test_notebook_00_runs_top_to_bottom_on_a_small_problem(tmp_path):
    import papermill as pm

    out = tmp_path / "00_synthetic_linear.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / "00_synthetic_linear.ipynb"), str(out), parameters=SMALL,
                        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False)  # fmt: skip
    book = nbformat.read(out, as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 5  # p, n, error, U = 2, budgets
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "gap (SharedRep(2) - MaxMin)" in html and "SharedRep (K=2)" in html  # budget gaps and tuned picks
    printed = "".join(o.get("text", "") for o in outputs)
    assert "2 problems x 2 seeds x 3 methods x 5 settings" in printed
