"""The package layout is the architecture: imports flow one way, cli -> read / write / trainer / tracker ->
db, and a plain checkout (no install) can create and upgrade a database."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import alembic
import pytest
import sqlalchemy

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "runhistory_sql"
#: a layer may import the layers below it, never one above
RANK = {"errors": 0, "db": 1, "write": 2, "read": 2, "trainer": 3, "tracker": 3, "cli": 4, "ui": 4}
#: the only imports across one rank, each with its reason in a comment at the import
ALLOWED = {("read.deletion", "write.lifecycle"), ("read.deletion", "write.run")}


def _layer(module: str) -> str:
    return module.split(".")[0]


def _imports(path: Path) -> set[str]:
    """The package modules that ``path`` imports, as ``layer.module`` relative to the package."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[:len(here) - node.level])
            target = base + (node.module.split(".") if node.module else [])
            names = [a.name for a in node.names] if not node.module or len(target) == 1 else [""]
            for name in names:
                full = ".".join(p for p in [*target, name] if p)
                if full:
                    found.add(full)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found |= {n.removeprefix("runhistory_sql.") for n in names if n.startswith("runhistory_sql.")}
    return found


def _modules() -> dict[str, set[str]]:
    return {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts): _imports(p)
        for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
    }


def test_no_module_imports_a_layer_above_its_own():
    upward = sorted(
        (module, target) for module, targets in _modules().items() for target in targets
        if _layer(target) in RANK and RANK[_layer(target)] > RANK[_layer(module)]
    )

    assert upward == []


def test_read_and_write_import_each_other_only_where_allowed():
    across = {
        (module.removesuffix(".__init__"), target) for module, targets in _modules().items() for target in targets
        if {_layer(module), _layer(target)} == {"read", "write"}
    }

    assert across == ALLOWED


def test_nothing_imports_the_cli():
    users = sorted(m for m, targets in _modules().items() if _layer(m) != "cli" and any(_layer(t) == "cli" for t in targets))

    assert users == []


@pytest.mark.slow
def test_a_plain_checkout_on_the_path_can_create_and_upgrade_a_database(tmp_path):
    # -S: no site processing, so no editable install maps runhistory_sql.migrations; the
    # dependencies come from site-packages put on the path by hand
    code = (
        "import sys; sys.path[:0] = sys.argv[4:] + [sys.argv[1]];"
        "from runhistory_sql.db.engine import make_engine;"
        "from runhistory_sql.db import migrate;"
        "e = make_engine(sys.argv[3]); print(migrate.upgrade(e, 'head')); e.dispose()"
    )
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    site = sorted({str(Path(m.__file__).resolve().parents[1]) for m in (sqlalchemy, alembic)})

    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(ROOT), "", url, *site],
        capture_output=True, text=True, cwd=tmp_path,
    )

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.strip().endswith("'0008')")
