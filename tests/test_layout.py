"""The house rules of the package layout, checked in fresh interpreters: which wing may import which."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "avaudit"
WINGS = ("media", "model", "inference", "audits")


def modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def avaudit_imports(module: str) -> set[str]:
    """Every avaudit module named in an import statement of `module`, at any depth of its code."""
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("avaudit"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("avaudit"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("avaudit."):
            found.add(node.value)  # the lazy API's module names
    return {name for name in found if name != module}


def wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_four_wings_exist_and_no_module_is_over_400_lines():
    for name in WINGS:
        assert (PACKAGE / name / "__init__.py").is_file(), name
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def wrong_way(module: str, target: str) -> bool:
    """The arrows that must never exist."""
    if module.startswith("avaudit.audits"):  # pure numpy/pandas: no torch, model, media or I/O
        return not target.startswith(("avaudit.audits", "avaudit.vocab", "avaudit.errors"))
    if module.startswith("avaudit.quality"):  # pure numpy/pandas over decoded arrays and signatures
        return not target.startswith(("avaudit.quality", "avaudit.vocab", "avaudit.errors"))
    if module == "avaudit.vocab":
        return True
    if {wing(module), wing(target)} == {"media", "model"}:
        return True
    if (wing(module) == "inference" or module == "avaudit.commands") and wing(target) == "training":
        return True
    if target == "avaudit.planted":
        return module != "avaudit.cli"
    if target in ("avaudit.cli", "avaudit.display"):
        return module not in ("avaudit.cli", "avaudit.__main__")
    return False


def test_no_import_runs_the_wrong_way():
    arrows = [f"{m} -> {t}" for m in modules() for t in avaudit_imports(m) if wrong_way(m, t)]
    assert arrows == []


def test_the_rules_catch_a_wrong_arrow():
    assert wrong_way("avaudit.audits.bias", "avaudit.inference.logits")
    assert wrong_way("avaudit.media.dataset", "avaudit.model.backbones")
    assert wrong_way("avaudit.inference.run", "avaudit.training.recipe")
    assert wrong_way("avaudit.quality.signals", "avaudit.media.decode")
    assert not wrong_way("avaudit.commands", "avaudit.audits.bias")


def test_the_audit_path_never_imports_the_trainer_and_there_is_no_circle():
    graph = {m: {t for t in avaudit_imports(m) if t in modules()} for m in modules()}
    assert not {t for t in graph["avaudit.inference.run"] | graph["avaudit.inference.logits"] if wing(t) == "training"}
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import circle: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in seen:
            return
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt != "avaudit" and not nxt.startswith("avaudit.__"):
                visit(nxt)
        stack.pop()
        seen.add(node)

    for module in graph:
        visit(module)


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    return set(json.loads(out.stdout))


@pytest.mark.slow
def test_the_cli_imports_no_torch_numpy_or_pandas_and_the_audits_no_torch():
    cli = loaded_after("import avaudit.cli")
    assert {"torch", "numpy", "pandas"} & cli == set()
    audits = loaded_after("import avaudit.audits.bias, avaudit.audits.missing_labels, avaudit.audits.retarget, "
                          "avaudit.audits.decisions, avaudit.audits.calibration, avaudit.audits.layerstats, "
                          "avaudit.quality.signals, avaudit.quality.duplicates")
    assert {m for m in audits if m.split(".")[0] in ("torch", "decord", "librosa", "av")} == set()
    assert {m for m in audits if m.startswith(("avaudit.model", "avaudit.inference", "avaudit.media"))} == set()
    vocab = loaded_after("import avaudit.vocab")
    assert {m for m in vocab if m.startswith("avaudit.")} == {"avaudit.vocab"}


def test_no_function_is_over_80_lines_and_no_line_squeezes_several_calls():
    """A long function is several steps that want names; a line of `a(), b()` is two statements
    squeezed to meet the module limit rather than a second idea found (docs/architecture.md)."""
    long, squeezed = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{where} {node.name}")
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Tuple) and sum(
                    isinstance(e, ast.Call) for e in node.value.elts) > 1:
                squeezed.append(where)
    assert long == [] and squeezed == []
