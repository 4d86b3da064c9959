"""One naming authority: only ``lake/names.py`` spells table paths, subjects and lineage
columns; every other module of the packages calls it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from lake.names import LAYERS

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lake", "ingest", "features", "training", "orchestration")
AUTHORITY = ROOT / "lake" / "names.py"
ANY_LAYER = "|".join(LAYERS)
# A table address: "<root>/layer/..." or "layer.<name>" / "layer/<name>" built from a value.
PATH = re.compile(rf"/({ANY_LAYER})(/|$)|/(dead_letters|erasures|_reports)\b")
LAYER_PREFIX = re.compile(rf"^({ANY_LAYER})[./]$")
LINEAGE = re.compile(r"^_(kafka|label)_\w*$|^_date$|^_schema_(id|version)$")
FIXED = {"dead_letters", "erasures", "_reports", "-value"}


def _sources() -> list[Path]:
    return sorted(
        p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if p.resolve() != AUTHORITY
    )


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                out.add(id(value))
    return out


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    docs |= {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
            text = "{}".join(str(p) for p in parts)
            first = node.values[0] if node.values else None
            starts_with_layer = (
                isinstance(first, ast.Constant)
                and LAYER_PREFIX.match(str(first.value))
                and len(node.values) > 1
            )
            if starts_with_layer or PATH.search(text) or text.endswith("-value"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: f-string {text!r}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and (node.value in FIXED or LINEAGE.match(node.value))
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    return found


def test_only_the_naming_authority_spells_table_paths_subjects_and_lineage_columns():
    found = [v for p in _sources() for v in _violations(p)]
    assert found == [], "use lake.names instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "code",
    [
        'uri = f"{root}/silver/{subject}"',
        'name = f"silver.{subject}"',
        'subject = f"{topic}-value"',
        'col = "_kafka_offset"',
        'table = "dead_letters"',
    ],
)
def test_the_check_catches_a_spelled_name(tmp_path, code):
    path = tmp_path / "m.py"
    path.write_text(code + "\n")
    original = ROOT
    try:
        globals()["ROOT"] = tmp_path
        assert len(_violations(path)) == 1
    finally:
        globals()["ROOT"] = original
