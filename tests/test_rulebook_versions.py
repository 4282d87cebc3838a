"""A rulebook's version names its content: the manifest records (id, version) of every rulebook a
run used, so an auditor can tell which rules made a list. A change to a rulebook, or to a fragment
it takes with `use:`, must come with a new version (an outside audit found five rulebooks changed
under their old versions in the working tree).

tests/rulebook_versions.json keeps, per rulebook id, each version with the sha256 of its content
as written (the YAML's data, fragments taken with `use:` put in place, the examples left out: they
are tests; comments do not count). After changing a
rulebook: bump its `version` and add the new (version, sha256) pair the failure message prints.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from scoring.rulebook import CONFIG_NAME, RULEBOOK_DIR

LOCK = Path(__file__).with_name("rulebook_versions.json")


def _documents() -> tuple[list[dict], dict[str, Any]]:
    """The rulebooks' data and the fragments' nodes, as the YAML files hold them."""
    books, fragments = [], {}
    for path in sorted(RULEBOOK_DIR.glob("*.yaml")):
        if path.name == CONFIG_NAME:
            continue
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "fragment" in doc and "id" not in doc:
            fragments[doc["fragment"]] = doc["node"]
        else:
            books.append(doc)
    return books, fragments


def _resolved(node: Any, fragments: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"use"}:
            return _resolved(fragments[node["use"]], fragments)
        return {k: _resolved(v, fragments) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolved(v, fragments) for v in node]
    return node.isoformat() if isinstance(node, dt.date) else node


def content_sha256(book: dict, fragments: dict[str, Any]) -> str:
    content = _resolved({k: v for k, v in book.items() if k != "examples"}, fragments)
    return hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def test_every_rulebook_version_names_one_content():
    lock: dict[str, dict[str, str]] = json.loads(LOCK.read_text(encoding="utf-8"))
    books, fragments = _documents()
    assert len(books) >= 12 and "sme_size" in fragments
    problems = []
    for book in books:
        book_id, version = book["id"], str(book["version"])
        sha, known = content_sha256(book, fragments), lock.get(book_id, {})
        if known.get(version) != sha:
            problems.append(
                f"{book_id} {version}: content {sha} "
                + (f"differs from the content recorded for this version ({known[version]}): bump the version"
                   if version in known else f"is not in {LOCK.name}: add \"{version}\": \"{sha}\""))
    assert not problems, "\n".join(problems)


def test_the_lock_keeps_old_versions_apart():
    """A version is recorded once (a dict per id) and no two versions share one content."""
    lock = json.loads(LOCK.read_text(encoding="utf-8"))
    for book_id, versions in lock.items():
        assert len(set(versions.values())) == len(versions), book_id
