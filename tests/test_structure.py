"""The package's shape: imports flow one way (no cycles), no stage imports another stage, nothing on the
main line imports the benchmark, and each name has one home."""

import ast
from pathlib import Path

from sweep_helpers import ROOT

PACKAGE = ROOT / "sharedrep_utils"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> package modules it imports (at the top or inside functions)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                for target in [base, *(f"{base}.{a.name}" for a in node.names)]:
                    if target in files and target not in (name, "sharedrep_utils"):
                        graph[name].add(target)
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in files and a.name != name}
    return graph


def test_the_import_graph_sees_the_package():
    graph = imports()
    assert "sharedrep_utils.config" in graph["sharedrep_utils.stages.sft"]  # so the checks below are not blind


def test_no_import_cycles():
    graph, state, cycles = imports(), {}, []

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_stage_imports_another_stage():
    graph = imports()
    for module, targets in graph.items():
        if module.startswith("sharedrep_utils.stages."):
            assert not [t for t in targets if t.startswith("sharedrep_utils.stages.")], module


def test_only_the_command_line_imports_the_benchmark():
    importers = {m for m, targets in imports().items() if any(t.startswith("sharedrep_utils.bench") for t in targets)}
    assert {m for m in importers if not m.startswith("sharedrep_utils.bench")} <= {"sharedrep_utils.cli"}


def test_method_names_are_built_and_parsed_in_one_module():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "methods.py":
            continue
        text = path.read_text()
        assert 'f"sharedrep-k' not in text and '"sharedrep-k"' not in text, path.name
        assert "def method_label" not in text and "def split_method" not in text, path.name


def test_every_gold_trait_kind_has_a_scorer():
    from sharedrep_utils.config import TRAIT_KINDS
    from sharedrep_utils.gold import SCORERS

    assert set(SCORERS) == set(TRAIT_KINDS)
