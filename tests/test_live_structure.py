"""The live side's structure, read from its source: who imports whom, how large things are, who holds the score's
lock, where the clock's position becomes ticks, and what the wheel leaves out."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIVE = ROOT / "muse_bridge"
MAX_CLASS_LINES, MAX_MODULE_LINES = 250, 400


def live_imports() -> dict[str, set[str]]:
    """muse_bridge module -> the muse_bridge modules it imports (type-checking imports included)."""
    graph = {}
    for path in LIVE.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
        graph[path.stem] = {n.split(".")[1] for n in names if n.startswith("muse_bridge.") and n.count(".") == 1}
    return graph


def test_only_the_wiring_module_imports_the_bridge_and_the_live_imports_have_no_cycle():
    graph = live_imports()
    assert [m for m, imports in graph.items() if "bridge" in imports] == []
    done, on_path = set(), []

    def visit(module: str) -> None:
        assert module not in on_path, f"import cycle: {' -> '.join(on_path[on_path.index(module):] + [module])}"
        if module in done:
            return
        on_path.append(module)
        for imported in sorted(graph.get(module, ())):
            visit(imported)
        on_path.pop()
        done.add(module)
    for module in sorted(graph):
        visit(module)


def sources() -> list[Path]:
    return [p for folder in ("kernels", "engine", "muse_bridge", "cli", "ui", "trainer", "bench")
            for p in sorted((ROOT / folder).glob("*.py"))]


def packages_imported(path: Path) -> set[str]:
    """The top-level packages a module imports (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
    return names


def test_the_layers_import_downwards_only():
    above = {"kernels": {"engine", "muse_bridge", "cli", "ui", "trainer", "bench"},
             "engine": {"muse_bridge", "cli", "ui", "trainer", "bench"},
             "muse_bridge": {"cli", "ui", "trainer", "bench"},
             "cli": {"ui", "trainer", "bench"},
             "trainer": {"ui", "muse_bridge", "bench"},   # the trainer reads the shared options, never the front ends
             "ui": {"trainer", "bench"}}
    wrong = [f"{p.relative_to(ROOT)} imports {sorted(packages_imported(p) & above[p.parent.name])}"
             for p in sources() if p.parent.name in above and packages_imported(p) & above[p.parent.name]]
    assert wrong == []


def test_no_class_over_250_lines_and_no_module_over_400():
    too_long = []
    for path in sources():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long.append(f"{path.relative_to(ROOT)}: class {node.name}, {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []


def forwards(method: ast.FunctionDef) -> bool:
    """A method whose whole body (its docstring aside) passes its own arguments on to one call."""
    body = [s for s in method.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], (ast.Return, ast.Expr)) or not isinstance(body[0].value, ast.Call):
        return False
    call = body[0].value
    params = [a.arg for a in method.args.args[1:]]
    passed = [a.id for a in call.args if isinstance(a, ast.Name)] + [k.value.id for k in call.keywords
                                                                       if isinstance(k.value, ast.Name)]
    return len(passed) == len(call.args) + len(call.keywords) and passed == params


def test_the_bridge_has_no_method_that_only_forwards_a_call():
    [bridge] = [n for n in ast.parse((LIVE / "bridge.py").read_text()).body
                if isinstance(n, ast.ClassDef) and n.name == "LiveBridge"]
    methods = [n for n in bridge.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("__")]
    assert [m.name for m in methods if forwards(m)] == []
    assert forwards(ast.parse("def suggest(self, seed):\n    return self.suggester.suggest(seed)").body[0])


def test_the_score_is_locked_in_one_module_and_the_clock_becomes_ticks_in_one_place():
    users = {p.name for p in LIVE.glob("*.py") if re.search(r"\b_?score\.(advance|tail|handle|insert_at_next_bar|"
                                                            r"reset|start|committed)\b", p.read_text())}
    assert users == {"context.py"}
    assert [p.name for p in LIVE.glob("*.py") if 'RankedLock("context")' in p.read_text()] == ["context.py"]
    converted = {p.name for p in [*LIVE.glob("*.py"), *(ROOT / "ui").glob("*.py")]
                 if re.search(r"int\([^()]*\.position\(", p.read_text())}
    assert converted == {"clock.py"}


def test_test_only_helpers_live_outside_the_packages():
    assert not (LIVE / "jackd.py").exists()
    for path in sources():
        if path.parent.name in ("muse_bridge", "engine", "cli", "ui", "trainer", "kernels"):
            assert "import argparse" not in path.read_text() or path.parent.name in ("cli", "ui", "trainer"), path


def test_front_ends_use_only_the_protocol():
    """The panel, the tray and the console send requests and read the snapshot (muse_bridge/protocol.py); only
    startup.py, which builds the bridge, touches a part."""
    reach = re.compile(r"\bbridge\.(?!(?:send|snapshot|close|do)\b|events\.subscribe\b)\w+")
    wrong = [f"{p.name}: {m.group(0)}" for p in sorted((ROOT / "ui").glob("*.py")) if p.name != "startup.py"
             for m in reach.finditer(p.read_text())]
    assert wrong == []
    strings = re.compile(r"[{,]\s*\"(?:sampling|answer|ports)\.\w+\":")   # a setting spelled as a string
    assert [p.name for p in sorted((ROOT / "ui").glob("*.py")) if strings.search(p.read_text())] == []
