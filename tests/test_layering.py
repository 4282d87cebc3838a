"""The rooms import one another only as docs/architecture.md's table says ("may import").

The table is read from the document itself, so that the document and the code cannot part: a
module that starts importing another room fails here until the table says so (data_contracts
imported scoring.tiers for the honor vocabulary, against "nothing of tidu", until the vocabulary
moved to data_contracts.honors)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("data_contracts", "features", "scoring", "reports", "pipelines")


def allowed_imports() -> dict[str, set[str] | None]:
    """Room → the modules of other rooms it may import, from the table's third column (None:
    everything). Names in backticks; `features.catalog` (labels) counts as features.catalog."""
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        room = re.fullmatch(r"`(\w+)/`", cells[0]) if len(cells) == 3 else None
        if room and room.group(1) in ROOMS:
            may = cells[2]
            rows[room.group(1)] = None if may == "everything" else {
                m for m in re.findall(r"`([\w.]+)`", may) if m.split(".")[0] in ROOMS}
    return rows


def imports_of(room: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Module of another room → the files of `room` that import it (absolute imports, anywhere
    in the file: an import inside a function counts as well)."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / room).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = ([f"{node.module}.{a.name}" for a in node.names] if node.module in ROOMS
                         else [node.module])
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in ROOMS and name.split(".")[0] != room:
                    found.setdefault(name, set()).add(str(path.relative_to(root)))
    return found


def test_the_table_names_every_room():
    assert set(allowed_imports()) == set(ROOMS)


def test_the_table_is_read_as_written():
    table = allowed_imports()
    assert table["data_contracts"] == set()          # "nothing of tidu"
    assert table["pipelines"] is None                # "everything"
    assert "features.catalog" in table["scoring"]


@pytest.mark.parametrize("room", [r for r in ROOMS if r != "pipelines"])
def test_each_room_imports_only_what_the_table_allows(room):
    allowed = allowed_imports()[room]
    outside = {module: files for module, files in imports_of(room).items() if module not in allowed}
    assert not outside, f"{room} imports {outside}; docs/architecture.md allows {sorted(allowed)}"


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    """What made data_contracts import scoring unnoticed would be caught: the reader finds a
    room's import at any depth of a module."""
    room = tmp_path / "data_contracts"
    room.mkdir()
    (room / "derive.py").write_text("def f():\n    from scoring.tiers import TIERS\n    return TIERS\n",
                                    encoding="utf-8")
    assert imports_of("data_contracts", tmp_path) == {"scoring.tiers": {"data_contracts/derive.py"}}
