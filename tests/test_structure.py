"""The package's import graph has no cycles, counting imports inside functions too (so a cycle
cannot hide behind a late import)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_universeg"


def _imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("napari_universeg."):
            found.add(node.module.split(".")[1])
    return found


def test_no_import_cycles():
    modules = {p.stem: p for p in PACKAGE.glob("*.py")}
    graph = {name: _imports(path) & set(modules) - {name} for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(path + [name, nxt])
            if nxt not in state:
                visit(nxt, path + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert {"model", "weights", "predict", "options", "choice"} <= set(graph)  # the walk saw the package


def _imports_training(path: Path, package: str) -> bool:
    """Whether ``path`` (a module of ``package``) imports napari_universeg.training, absolutely or relatively."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(n == "napari_universeg.training" or n.startswith("napari_universeg.training.") for n in names):
            return True
    return False


def test_the_plugin_never_imports_training():
    """Training (training/, installed as napari_universeg.training) needs its own extras and a source
    checkout; no module of the plugin may depend on it."""
    modules = sorted(PACKAGE.rglob("*.py"))
    offenders = []
    for path in modules:
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        package = ".".join(parts if path.name == "__init__.py" else parts[:-1])
        if _imports_training(path, package):
            offenders.append(str(path.relative_to(PACKAGE.parent)))
    assert not offenders, f"the plugin imports napari_universeg.training: {offenders}"
    assert len(modules) > 20 and not (PACKAGE / "training").exists()  # the walk saw the plugin, and training is not under it


def test_the_checker_sees_training_imports(tmp_path):
    for code, package, found in [
        ("import napari_universeg.training.train", "napari_universeg", True),
        ("from napari_universeg.training import train", "napari_universeg", True),
        ("from napari_universeg import training", "napari_universeg", True),
        ("from . import training", "napari_universeg", True),
        ("from .training.data import prepare", "napari_universeg", True),
        ("from .. import training", "napari_universeg.sample_data", True),
        ("from . import training", "napari_universeg.sample_data", False),
        ("from napari_universeg import trainings, weights", "napari_universeg", False),
        ("import training", "napari_universeg", False),
    ]:
        path = tmp_path / "m.py"
        path.write_text(code + "\n")
        assert _imports_training(path, package) is found, code
