"""The architecture holds: dependencies point down only (import-linter's contracts in pyproject.toml),
no import cycle between modules, and no module uses another package's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "wecom", "crm", "identity", "tagging", "handover", "campaigns", "channels", "sidebar", "console")


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_no_import_cycle_between_modules() -> None:
    """Imports at run time only (what TYPE_CHECKING guards is for the type checker, not a cycle)."""
    import grimp

    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(imported) == 1:
                cycles.append(path[path.index(imported):] + [imported] if imported in path else [module, imported])
            elif imported not in state:
                visit(imported, path + [imported])
        state[module] = 2

    for module in sorted(graph.modules):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _owner(module: str) -> str:
    """The unit whose private names are its own: a top-level package, or one of tagging's areas."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] in ("tagging", "wecom") and len(parts) > 1 else parts[0]


def _absolute(importer: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def test_no_module_uses_another_packages_private_names() -> None:
    offences: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            is_package = path.name == "__init__.py"
            module = module.removesuffix(".__init__")
            tree = ast.parse(path.read_text(), str(path))
            aliases: dict[str, str] = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    source = _absolute(module, node, is_package)
                    for alias in node.names:
                        if source.split(".")[0] in PACKAGES:
                            aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
                        private = alias.name.startswith("_") and not alias.name.startswith("__")
                        ours = source.split(".")[0] in PACKAGES
                        if private and (not ours or _owner(source) != _owner(module)):
                            offences.append(f"{module} imports {source}.{alias.name}")
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] in PACKAGES:
                            aliases[alias.asname or alias.name.split(".")[0]] = alias.name
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                        and node.attr.startswith("_") and not node.attr.startswith("__") \
                        and node.value.id in aliases and _owner(aliases[node.value.id]) != _owner(module):
                    offences.append(f"{module} uses {aliases[node.value.id]}.{node.attr}")
    assert offences == []
