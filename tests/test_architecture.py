"""The house keeps its shape: imports point one way, each rule lives in one place, the error
tree is drawn as it is, and each role installs only what it needs."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import smart_attendance
from smart_attendance import errors
from smart_attendance.cli import main

SRC = Path(smart_attendance.__file__).parent

# Lower layers never import higher ones (docs/architecture.md).
LAYER = {
    "config": 0,
    "errors": 0,
    "models": 0,
    "engine": 1,
    "recognition": 1,
    "db": 1,
    "jobs": 1,
    "people": 2,
    "attendance": 2,
    "reports": 2,
    "evaluation": 2,
    "demo": 2,
    "privacy": 2,
    "app": 3,
    "web": 4,
    "cli": 4,
}
# Within a layer: settings, errors and values know each other; a scan uses the gallery;
# reports read the register's files; the evaluation uses enrolment's photo types; the demo
# reads the timetable it writes; privacy
# (erasure, export, purge) works on the gallery and the register; the command builds the web app.
SAME_LAYER_ALLOWED = {
    ("config", "errors"),
    ("models", "errors"),
    ("attendance", "people"),
    ("reports", "attendance"),
    ("evaluation", "people"),
    ("demo", "attendance"),
    ("privacy", "people"),
    ("privacy", "attendance"),
    ("cli", "web"),
}
# The camera client runs on a machine without the server: it may use only these.
CLIENT_MAY_USE = {"config", "errors", "models", "engine", "recognition", "client"}


def _part(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0]


def _imports(path: Path) -> set[str]:
    """The top-level parts of the package that ``path`` imports (relative imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = path.relative_to(SRC).parent.parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - (node.level - 1)])
            target = base + (node.module.split(".") if node.module else [])
            if target:
                found.add(target[0])
            else:  # from . import x
                found.update(alias.name for alias in node.names)
    return found


def _modules() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if p.name not in {"__init__.py", "__main__.py"}]


def test_imports_point_one_way() -> None:
    wrong = []
    for path in _modules():
        part = _part(path)
        for target in _imports(path) - {part}:
            if part == "client":
                if target not in CLIENT_MAY_USE:
                    wrong.append(f"{path.relative_to(SRC)} -> {target}")
                continue
            if target not in LAYER:
                continue
            if LAYER[target] > LAYER[part] or (
                LAYER[target] == LAYER[part] and (part, target) not in SAME_LAYER_ALLOWED
            ):
                wrong.append(f"{path.relative_to(SRC)} -> {target}")
    assert wrong == []


def test_the_rules_live_in_one_place() -> None:
    """The open-set rule in the matcher, the second look in ``decisions.identify``: the
    server and ``attendance eval`` both call them, neither has a copy."""
    texts = {p.relative_to(SRC).as_posix(): p.read_text(encoding="utf-8") for p in _modules()}
    threshold_rule = re.compile(r"<=\s*self\.threshold")
    second_look = re.compile(r"is_borderline\(")
    assert [name for name, text in texts.items() if threshold_rule.search(text)] == [
        "recognition/matcher.py"
    ]
    users = sorted(name for name, text in texts.items() if second_look.search(text))
    assert users == ["recognition/decisions.py", "recognition/matcher.py"]
    assert "identify(" in texts["evaluation.py"]
    assert "decide_frame(" in texts["recognition/service.py"]


def _drawn_tree() -> dict[str, str | None]:
    """Class name -> parent name, as the docstring of errors.py draws them."""
    doc = errors.__doc__ or ""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^(\s*)(?:\|?\s*)*(\+-- )?([A-Z]\w+Error)\b", line)
        if not match:
            continue
        name = match.group(3)
        depth = line.index(name)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    return parents


def test_the_error_tree_is_drawn_as_it_is() -> None:
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, errors.AttendanceError)
    }
    drawn = _drawn_tree()
    assert set(drawn) == set(classes)
    for name, cls in classes.items():
        parent = cls.__bases__[0].__name__ if cls is not errors.AttendanceError else None
        assert drawn[name] == parent, name


def test_every_exception_lives_in_errors() -> None:
    defined_elsewhere = []
    for info in pkgutil.walk_packages(smart_attendance.__path__, "smart_attendance."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, Exception)
                and value.__module__ == module.__name__
                and module.__name__ != "smart_attendance.errors"
            ):
                defined_elsewhere.append(f"{module.__name__}.{name}")
    assert defined_elsewhere == []


@pytest.mark.real
def test_the_camera_client_loads_no_server_library() -> None:
    code = (
        "import sys\n"
        "import smart_attendance.client.app, smart_attendance.client.uploader\n"
        "import smart_attendance.cli\n"
        "heavy = ('flask', 'sqlalchemy', 'onnxruntime', 'matplotlib', 'waitress', 'onnx')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "blocked", "extra"),
    [
        (["stats"], "flask", "server"),
        (["serve"], "sqlalchemy", "server"),
        (["client", "--source", "x.mp4"], "requests", "client"),
        (["blinks", "x.mp4"], "cv2", "client"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], blocked: str, extra: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, blocked, None)  # as if the package were not installed
    result = CliRunner().invoke(main, args, env={"API_SECRET_KEY": "k" * 24})
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"pip install 'smart-attendance[{extra}]'" in lines[0]
    assert blocked in lines[0]
    assert "Traceback" not in result.output


# What needs 3.11: the standard library's TOML reader and ``datetime.UTC``.
NEEDS_3_11 = re.compile(r"^\s*(import tomllib|from tomllib |from datetime import .*\bUTC\b)", re.M)


def test_the_python_version_said_everywhere_is_the_one_the_code_needs() -> None:
    """The code uses 3.11's tomllib and datetime.UTC: pyproject, the linters and the docs say
    3.11+, and nothing says an older Python will do."""
    import tomllib

    root = SRC.parents[1]
    users = [p.name for p in sorted(SRC.rglob("*.py")) if NEEDS_3_11.search(p.read_text("utf-8"))]
    assert users, "no use of 3.11's standard library found: the check would prove nothing"
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
    assert project["tool"]["mypy"]["python_version"] == "3.11"
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "Needs Python 3.11+" in readme
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    for page in docs:
        said = re.findall(r"Python 3\.(\d+)\+|Python >= ?3\.(\d+)", page.read_text("utf-8"))
        assert all(int(a or b) >= 11 for a, b in said), (page.name, said)
