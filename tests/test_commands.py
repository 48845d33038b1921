"""The commands wing: one module per sub-command, the same flags everywhere, no import cycles in the package."""
import ast
import importlib
from pathlib import Path

import pytest

from bench.cli import parser
from bench.commands import COMMANDS
from bench.commands._args import suite_path
from bench.outdir import out_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_is_a_module_with_help_add_arguments_and_main(name):
    mod = importlib.import_module(f"bench.commands.{COMMANDS[name]}")
    assert isinstance(mod.HELP, str) and mod.HELP and callable(mod.add_arguments) and callable(mod.main)
    if Path(mod.__file__).parent.name == "commands":  # commands written here hold no public library code
        tree = ast.parse(Path(mod.__file__).read_text())
        public = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                  and not n.name.startswith("_")}
        assert public <= {"add_arguments", "main"}, f"library code in bench/commands/{COMMANDS[name]}.py: {public}"


def test_shared_flags_and_their_old_spellings():
    p = parser()
    assert p.parse_args(["run", "s.yaml", "--task", "a"]).tasks == "a"  # --task: the same flag as --tasks
    assert p.parse_args(["run", "s.yaml", "--target", "test_bleu"]).targets == "test_bleu"
    a = p.parse_args(["search", "s.yaml", "--tasks", "t", "--scorer", "gp"])
    assert a.task == "t"
    a = p.parse_args(["llm-bench", "--suite", "suites/wmt19.yaml", "--json"])  # llm-bench's old flags
    assert suite_path(a) == "suites/wmt19.yaml" and a.format == "json"
    assert suite_path(p.parse_args(["llm-bench"])) == "suites/wmt14.yaml"
    assert suite_path(p.parse_args(["search-bench", "suites/wmt19.yaml"])) == "suites/wmt19.yaml"
    assert p.parse_args(["pool-flops", "s.yaml", "--task", "x"]).tasks == "x"
    assert p.parse_args(["latency", "released"]).suite is None  # the command's default applies in main


def test_out_is_a_folder_and_a_file_path_still_names_the_file():
    assert out_file(Path("d"), Path("x/benchmark.md"), "benchmark.md", (".md",)) == Path("d/benchmark.md")
    assert out_file(Path("d/b.md"), Path("x/benchmark.md"), "benchmark.md", (".md",)) == Path("d/b.md")
    assert out_file(None, Path("x/benchmark.md"), "benchmark.md", (".md",)) == Path("x/benchmark.md")


def test_one_task_commands_refuse_a_list(capsys):
    from bench.cli import main

    assert main(["search", str(ROOT / "suites/wmt14.yaml"), "--task", "a,b", "--scorer", "gp"]) == 2
    assert "error: --task a,b: this command takes one name" in capsys.readouterr().err


def _module_imports(root: Path) -> dict[str, set[str]]:
    """Module -> the bench/predictors modules it imports at module level (imports inside functions run later)."""
    files = {".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): f
             for f in [*root.glob("bench/**/*.py"), *root.glob("predictors/*.py")]}
    graph = {}
    for name, f in files.items():
        pkg = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1]) if node.level else ""
                mod = ".".join(x for x in (base, node.module) if x)
                deps |= {f"{mod}.{a.name}" if f"{mod}.{a.name}" in files else mod for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def test_no_import_cycles_and_sources_never_import_the_suite():
    graph = _module_imports(ROOT)
    for name in graph:
        if name.startswith("bench.sources"):
            assert "bench.suite" not in graph[name], name
    state: dict[str, int] = {}

    def visit(n, path):
        state[n] = 1
        for d in graph[n]:
            assert state.get(d) != 1, f"import cycle: {' -> '.join([*path, n, d])}"
            if d not in state:
                visit(d, [*path, n])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [])
    assert not [f for f in ROOT.glob("bench/**/*.py") if "noqa: E402" in f.read_text()]
