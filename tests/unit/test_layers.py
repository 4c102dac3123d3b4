"""The house's floors: the ground imports nothing of ours, the CLI loads a part only when it runs,
and the server never loads sensor or agent code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from doorwatch.cli import COMMANDS, load_command
from tests.paths import REPO_ROOT

OURS = ("ground", "doorwatch", "firmware_config", "broker", "sensors", "agent", "server")


def _imported_packages(source: Path) -> set[str]:
    """Top-level names of every package that ``source`` imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _modules_loaded(code: str) -> set[str]:
    """Names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _ours(modules: set[str], *packages: str) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in packages)


def test_ground_imports_nothing_of_ours() -> None:
    for source in sorted((REPO_ROOT / "ground").rglob("*.py")):
        others = _imported_packages(source) & (set(OURS) - {"ground"})
        assert not others, f"{source.name} imports {sorted(others)}"


@pytest.mark.parametrize("path", [
    p for p in sorted(REPO_ROOT.glob("*/**/__init__.py"))
    if p.relative_to(REPO_ROOT).parts[0] in OURS
])
def test_package_init_files_hold_only_a_docstring(path: Path) -> None:
    # Touching a package must not load its modules (server.web must not pull in FastAPI).
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)
               and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
    assert not imports, f"{path.relative_to(REPO_ROOT)} imports at package level"


def test_doorwatch_help_loads_no_part() -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "doorwatch", "--help"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "household" in result.stdout
    assert "agent" in result.stdout
    loaded = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:") and "|" in line}
    assert "doorwatch.cli" in loaded  # the probe really read import times
    parts = _ours(loaded, "server", "agent", "sensors", "broker", "firmware_config")
    assert parts == []
    for heavy in ("fastapi", "cv2", "numpy", "paho", "asyncpg", "apprise"):
        assert heavy not in loaded


def test_listed_help_is_the_commands_own_help() -> None:
    for name, entry in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert (command.help or "").strip().splitlines()[0] == entry.help, name


def test_server_never_loads_sensor_or_agent_code() -> None:
    server_modules = sorted(
        ".".join(p.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO_ROOT / "server").rglob("*.py"))
    code = "\n".join(f"import {m}" for m in server_modules)
    loaded = _modules_loaded(code)
    assert "server.ingest.ingestor" in loaded
    assert "server.web.app" in loaded
    assert _ours(loaded, "sensors", "agent") == []


def test_config_and_provisioning_do_not_load_sensors() -> None:
    loaded = _modules_loaded("import firmware_config.device_config, server.domain.provisioning")
    assert "firmware_config.scene" in loaded
    assert _ours(loaded, "sensors", "agent") == []


def _import_graph() -> dict[str, set[str]]:
    """Module -> our modules it imports anywhere in the file (functions, TYPE_CHECKING too)."""
    modules = {
        ".".join(p.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for package in OURS for p in (REPO_ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_among_our_modules() -> None:
    assert _cycles(_import_graph()) == []


CONTRACT = ("broker.topics", "broker.messages", "broker.door_line")


def test_the_contract_is_apart_from_broker_operations() -> None:
    # broker/'s top holds the contract (and the part's CLI); Mosquitto and RabbitMQ
    # operations live in their folders, and the contract never loads them.
    top = {p.stem for p in (REPO_ROOT / "broker").glob("*.py")} - {"__init__"}
    assert top == {name.removeprefix("broker.") for name in CONTRACT} | {"cli"}
    loaded = _modules_loaded("\n".join(f"import {m}" for m in CONTRACT))
    assert "broker.messages" in loaded
    assert _ours(loaded, "broker") == sorted({"broker", *CONTRACT})


# Each package and the packages below it that it may import (README's layout table,
# top to bottom): an import only ever goes down.
FLOORS = {
    "doorwatch": {"agent", "server", "sensors", "firmware_config", "broker", "ground"},
    "agent": {"sensors", "firmware_config", "broker", "ground"},
    "server": {"firmware_config", "broker", "ground"},
    "sensors": {"firmware_config", "ground"},
    "firmware_config": {"broker", "ground"},
    "broker": {"ground"},
    "ground": set(),
}


def test_imports_only_go_down_the_floors() -> None:
    assert set(FLOORS) == set(OURS)
    upward = sorted(
        f"{module} -> {target}" for module, targets in _import_graph().items()
        for target in targets
        if target.split(".")[0] != module.split(".")[0]
        and target.split(".")[0] not in FLOORS[module.split(".")[0]])
    assert upward == []


def _sources_mentioning(*needles: str) -> list[str]:
    """``path: needle`` for each of our source files (tests and bench too) using a needle."""
    found = []
    for package in (*OURS, "bench", "tests"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue
            text = path.read_text(encoding="utf-8")
            found += [f"{path.relative_to(REPO_ROOT)}: {n}" for n in needles if n in text]
    return found


def test_the_interpreter_is_tuned_in_one_place() -> None:
    uses = _sources_mentioning("setswitchinterval", "gc.set_threshold", "gc.freeze")
    assert uses == ["server/interpreter.py: setswitchinterval",
                    "server/interpreter.py: gc.set_threshold", "server/interpreter.py: gc.freeze"]


def test_only_pydantics_public_api() -> None:
    assert _sources_mentioning("__pydantic_core_schema__", "__pydantic_validator__",
                               "__pydantic_serializer__") == []
