"""Rulebook files: they load, validate, cover time without gaps, and carry working examples."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from scoring.rulebook import (
    DERIVED_FEATURES,
    RULEBOOK_DIR,
    Bands,
    Manual,
    ManualItem,
    Points,
    RulebookError,
    read_config,
    read_rulebook_files,
    walk,
)
from scoring.rules import DERIVED, check_examples, load_rulebooks, rulebook_in_force
from scoring.tiers import TIERS

ALL = load_rulebooks(include_alternatives=True)
DEFAULTS = load_rulebooks()
ONE_DAY = dt.timedelta(days=1)
# tiers whose rules were replaced by a document not yet transcribed: nothing in force after
ENDED = {"gazelle": dt.date(2024, 10, 15)}   # 锡科规〔2024〕218号's 瞪羚 clauses not captured
MIIT_IDS = {"miit-2022-innovative_sme", "miit-2022-specialised_sme", "miit-2022-little_giant",
            "miit-2026-tech_innovative_sme", "miit-2026-tech_innovative_sme-alt115",
            "miit-2026-specialised_sme", "miit-2026-little_giant"}


def test_every_rulebook_loads_with_source_and_dates():
    ids = {b.id for b in ALL}
    assert {
        "miit-2022-innovative_sme",
        "miit-2022-specialised_sme",
        "miit-2022-little_giant",
        "miit-2026-tech_innovative_sme",
        "miit-2026-specialised_sme",
        "miit-2026-little_giant",
        "most-high_tech_enterprise",
        "most-tech_sme",
        "wuxi-2020-eaglet",
        "wuxi-2024-eaglet",
        "wuxi-2020-gazelle",
        "jiangsu-2024-quasi_unicorn",
        "wuxi-2024-quasi_unicorn",
        "yancheng-2022-quasi_unicorn",
        "jiangsu-2025-quasi_unicorn",
    } <= ids
    for b in ALL:
        assert b.source.document and b.note, b.id
        assert b.version


def test_defaults_cover_every_tier_without_gap_or_overlap():
    chains = defaultdict(list)
    for b in DEFAULTS:
        chains[b.tier].append(b)
    assert set(chains) == set(TIERS)
    for tier, chain in chains.items():
        chain.sort(key=lambda b: b.effective_from)
        # one jurisdiction's chain per tier, and consecutive periods that touch
        assert len({b.jurisdiction for b in chain}) == 1, tier
        for prev, nxt in pairwise(chain):
            assert prev.effective_to is not None, (tier, prev.id)
            assert prev.effective_to + ONE_DAY == nxt.effective_from, (tier, prev.id, nxt.id)
        # open-ended: some rule is always in force, unless its replacement is not transcribed
        assert chain[-1].effective_to == ENDED.get(tier), tier


def test_alternatives_are_not_defaults_and_defaults_are_not_alternatives():
    default_ids = {b.id for b in DEFAULTS}
    for b in ALL:
        assert (b.alternative_of is None) == (b.id in default_ids), b.id
    alternatives = {b.id: b.alternative_of for b in ALL if b.alternative_of}
    assert alternatives == {
        "wuxi-2024-quasi_unicorn": "jiangsu-2024-quasi_unicorn",
        "yancheng-2022-quasi_unicorn": "jiangsu-2024-quasi_unicorn",
        "jiangsu-2025-quasi_unicorn": "jiangsu-2024-quasi_unicorn",
        "miit-2026-tech_innovative_sme-alt115": "miit-2026-tech_innovative_sme",
    }


@pytest.mark.parametrize("tier", ["innovative_sme", "specialised_sme", "little_giant"])
def test_2022_rules_until_2026_03_31_and_2026_rules_from_2026_04_01(tier):
    old = rulebook_in_force(DEFAULTS, tier, dt.date(2026, 3, 31))
    new = rulebook_in_force(DEFAULTS, tier, dt.date(2026, 4, 1))
    assert old.id.startswith("miit-2022-")
    assert new.id.startswith("miit-2026-")
    # the quarter ends pick the same
    assert rulebook_in_force(DEFAULTS, tier, dt.date(2026, 3, 31)) is old
    assert rulebook_in_force(DEFAULTS, tier, dt.date(2026, 6, 30)) is new


def test_the_run_names_the_rulebook_that_follows_the_quarter():
    """A 2026Q1 list is judged by 63号 (in force on 03-31); the manifest names the 2026 rulebook that
    judges applications from 04-01, and none once the newest rules are in force."""
    from pipelines.run import _next_rulebook

    q1, q2 = dt.date(2026, 3, 31), dt.date(2026, 6, 30)
    assert _next_rulebook(DEFAULTS, "specialised_sme", q1) == {
        "id": "miit-2026-specialised_sme", "version": rulebook_in_force(DEFAULTS, "specialised_sme", q2).version,
        "name_zh": "专精特新中小企业", "effective_from": "2026-04-01"}
    assert _next_rulebook(DEFAULTS, "innovative_sme", q1)["name_zh"] == "科技和创新型中小企业"   # renamed
    assert _next_rulebook(DEFAULTS, "specialised_sme", q2) is None
    assert _next_rulebook(DEFAULTS, "eaglet", dt.date(2024, 9, 30))["id"] == "wuxi-2024-eaglet"
    assert _next_rulebook(DEFAULTS, "gazelle", dt.date(2024, 9, 30)) is None   # nothing follows 2020's
    assert _next_rulebook(DEFAULTS, "high_tech_enterprise", q1) is None


def test_2026_entry_tier_is_the_transitional_63_reading_by_default():
    rb = rulebook_in_force(DEFAULTS, "innovative_sme", dt.date(2026, 6, 30))
    assert rb.id == "miit-2026-tech_innovative_sme"
    assert rb.name_zh == "科技和创新型中小企业"
    assert "TRANSITIONAL" in rb.note
    old = rulebook_in_force(DEFAULTS, "innovative_sme", dt.date(2025, 12, 31))
    assert rb.criteria == old.criteria  # extends 63号 附件1 unchanged


def test_in_force_prefers_the_default_over_an_alternative():
    on = dt.date(2025, 6, 30)
    assert rulebook_in_force(ALL, "quasi_unicorn", on).id == "jiangsu-2024-quasi_unicorn"
    wuxi = [b for b in ALL if b.id == "wuxi-2024-quasi_unicorn"]
    assert rulebook_in_force(wuxi, "quasi_unicorn", on).id == "wuxi-2024-quasi_unicorn"


def test_no_rulebook_in_force_raises():
    with pytest.raises(LookupError, match="quasi_unicorn"):
        rulebook_in_force(DEFAULTS, "quasi_unicorn", dt.date(2019, 12, 31))


def test_eaglet_switches_to_the_2024_revision_on_its_assumed_start():
    assert rulebook_in_force(DEFAULTS, "eaglet", dt.date(2024, 10, 15)).id == "wuxi-2020-eaglet"
    assert rulebook_in_force(DEFAULTS, "eaglet", dt.date(2024, 12, 31)).id == "wuxi-2024-eaglet"


def test_gazelle_2020_rules_end_with_the_eaglet_ones_and_nothing_follows():
    # the 2024 revision replaces both; only its 雏鹰 clauses were captured (criteria.md §2.1)
    eaglet_2020 = next(b for b in ALL if b.id == "wuxi-2020-eaglet")
    assert rulebook_in_force(DEFAULTS, "gazelle", dt.date(2024, 9, 30)).id == "wuxi-2020-gazelle"
    assert rulebook_in_force(DEFAULTS, "gazelle", eaglet_2020.effective_to).id == "wuxi-2020-gazelle"
    for day in (eaglet_2020.effective_to + ONE_DAY, dt.date(2024, 12, 31), dt.date(2026, 6, 30)):
        with pytest.raises(LookupError, match="no gazelle rulebook"):
            rulebook_in_force(DEFAULTS, "gazelle", day)


@pytest.mark.parametrize("rulebook", ALL, ids=lambda b: b.id)
def test_rulebook_examples_hold(rulebook):
    assert check_examples(rulebook) == []


def test_every_default_rulebook_ships_examples():
    for b in DEFAULTS:
        assert len(b.examples) >= 2, b.id


def test_points_tables_add_up_and_manual_items_are_labelled():
    for b in ALL:
        for node in walk(b.tree):
            if isinstance(node, Points):
                assert node.max_total == 100, b.id
            if isinstance(node, (Manual, ManualItem)):
                assert node.label, (b.id, node.id)


def test_derived_feature_names_agree():
    assert set(DERIVED) == DERIVED_FEATURES


def _catalog_names() -> set[str]:
    catalog = pytest.importorskip("features.catalog")
    try:
        loaded = catalog.load_catalog()
        if hasattr(loaded, "columns") and "name" in loaded.columns:  # a frame
            return set(loaded["name"])
        if isinstance(loaded, dict):
            return set(loaded)
        return {item["name"] if isinstance(item, dict) else item.name for item in loaded}
    except Exception as exc:  # noqa: BLE001 — another room's work in progress
        pytest.skip(f"features.catalog not usable yet: {exc}")


def test_features_exist_in_the_catalog_when_it_is_there():
    names = _catalog_names()
    used = set()
    for b in ALL:
        for node in walk(b.tree):
            used |= {getattr(node, "feature", None)} | {
                band.feature for band in getattr(node, "bands", [])
            }
            used |= {case.when.feature for case in getattr(node, "cases", [])}
    inputs = set()
    for f in used - {None}:
        inputs |= set(DERIVED[f][1]) if f in DERIVED else {f}
    assert inputs - names - {"quarter_end"} == set()


# --- validation of bad files -----------------------------------------------------------------


def _write(tmp: Path, name: str, doc: dict) -> None:
    (tmp / name).write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def _minimal(**over) -> dict:
    doc = {
        "id": "t-1",
        "version": "1",
        "tier": "eaglet",
        "name_zh": "测试",
        "jurisdiction": "test",
        "source": {"document": "test"},
        "effective_from": "2020-01-01",
        "effective_to": None,
        "criteria": [
            {
                "id": "a",
                "kind": "threshold",
                "label": "A",
                "feature": "revenue_py",
                "op": ">=",
                "value": 1,
                "unit": "wan",
            }
        ],
    }
    doc.update(over)
    return doc


def test_all_problems_are_reported_together(tmp_path):
    _write(tmp_path, "a.yaml", _minimal(id="bad-a", tier="no_such_tier"))
    bad_feature = _minimal(id="bad-b")
    bad_feature["criteria"][0]["feature"] = "revenue_typo"
    _write(tmp_path, "b.yaml", bad_feature)
    _write(tmp_path, "c.yaml", _minimal(id="bad-c", effective_to="2019-01-01"))
    with pytest.raises(RulebookError) as err:
        read_rulebook_files(tmp_path)
    text = str(err.value)
    assert "a.yaml" in text and "no_such_tier" in text
    assert "b.yaml" in text and "revenue_typo" in text
    assert "c.yaml" in text and "effective_to" in text


def test_duplicate_ids_and_bands_without_catch_all_are_rejected(tmp_path):
    doc = _minimal(id="dup")
    doc["criteria"].append(dict(doc["criteria"][0]))
    _write(tmp_path, "a.yaml", doc)
    with pytest.raises(RulebookError, match="used twice"):
        read_rulebook_files(tmp_path)
    with pytest.raises(ValueError, match="last band"):
        Bands(
            kind="bands",
            id="b",
            label="B",
            feature="revenue_py",
            unit="wan",
            bands=[{"value": 1, "points": 5}],
        )


def _copy_rulebooks(directory: Path, *ids: str) -> None:
    """Those rulebooks into `directory`, with the shared fragments they use."""
    for name in [*ids, *(p.stem for p in RULEBOOK_DIR.glob("fragment-*.yaml"))]:
        shutil.copy(RULEBOOK_DIR / f"{name}.yaml", directory)


def test_a_fragment_no_file_defines_is_named(tmp_path):
    shutil.copy(RULEBOOK_DIR / "miit-2022-specialised_sme.yaml", tmp_path)
    with pytest.raises(RulebookError, match="miit-2022-specialised_sme.yaml: uses fragments that "
                                            "no file defines: miit_eligibility, sme_size"):
        read_rulebook_files(tmp_path)


def test_a_fragment_defined_twice_is_named(tmp_path):
    _copy_rulebooks(tmp_path, "miit-2022-specialised_sme")
    shutil.copy(RULEBOOK_DIR / "fragment-sme_size.yaml", tmp_path / "fragment-sme_size-copy.yaml")
    with pytest.raises(RulebookError, match="fragment-sme_size.yaml: fragment 'sme_size' already "
                                            "defined by fragment-sme_size-copy.yaml"):
        read_rulebook_files(tmp_path)


def test_a_fragment_is_one_node_shared_by_the_rulebooks_that_use_it():
    books = {b.id: b for b in read_rulebook_files()}
    users = [b for b in books.values() if any(n.id == "sme_size" for n in walk(b.tree))]
    assert {b.id for b in users} >= {"miit-2022-innovative_sme", "miit-2022-specialised_sme",
                                     "miit-2022-little_giant", "miit-2026-specialised_sme",
                                     "miit-2026-little_giant", "miit-2026-tech_innovative_sme"}
    nodes = {b.node("sme_size").model_dump_json() for b in users}
    assert len(nodes) == 1


def test_every_miit_rulebook_leaves_the_shared_conditions_to_a_person():
    """criteria.md §1.1 (63号 and 2026): lists, banned products, incidents — one manual criterion,
    presumed to hold, in every MIIT rulebook and in no other."""
    holders = {b.id for b in ALL if any(n.id == "shared_eligibility" for n in walk(b.tree))}
    assert holders == MIIT_IDS
    nodes = {b.node("shared_eligibility").model_dump_json() for b in ALL if b.id in holders}
    assert len(nodes) == 1
    node = next(b for b in ALL if b.id in holders).node("shared_eligibility")
    assert isinstance(node, Manual) and node.presume == "pass"
    assert "经营异常名录" in node.label and "偷漏税" in node.label


def test_the_alt115_reading_keeps_the_115_size_gates_beside_the_shared_conditions():
    books = {b.id: b for b in ALL}
    alt, base = books["miit-2026-tech_innovative_sme-alt115"], books["most-tech_sme"]
    assert alt.node("size") == base.node("size")
    assert [c.id for c in alt.node("size_and_shared_eligibility").criteria] == [
        "size", "shared_eligibility"]
    assert alt.node("route") == base.node("route")


def test_config_rejects_overlapping_chains(tmp_path):
    for name in RULEBOOK_DIR.glob("*.yaml"):
        shutil.copy(name, tmp_path / name.name)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))
    cfg["tiers"]["quasi_unicorn"] = ["jiangsu-2024-quasi_unicorn", "jiangsu-2025-quasi_unicorn"]
    _write(tmp_path, "config.yaml", cfg)
    with pytest.raises(RulebookError, match="both in force"):
        load_rulebooks(tmp_path)


def test_a_city_can_choose_an_alternative(tmp_path):
    for name in RULEBOOK_DIR.glob("*.yaml"):
        shutil.copy(name, tmp_path / name.name)
    cfg = read_config(tmp_path / "config.yaml").model_dump()
    cfg["tiers"]["quasi_unicorn"] = ["wuxi-2024-quasi_unicorn"]
    _write(tmp_path, "config.yaml", cfg)
    books = load_rulebooks(tmp_path)
    assert rulebook_in_force(books, "quasi_unicorn", dt.date(2025, 12, 31)).id == (
        "wuxi-2024-quasi_unicorn"
    )


def test_a_province_can_replace_the_local_indicators(tmp_path):
    _copy_rulebooks(tmp_path, "miit-2022-specialised_sme")
    variant = {
        "id": "testprov-2022-specialised_sme",
        "extends": "miit-2022-specialised_sme",
        "alternative_of": "miit-2022-specialised_sme",
        "jurisdiction": "testprov",
        "replace": {
            "local_indicators": {
                "id": "local_export",
                "kind": "bands",
                "label": "出口额占比（示例）",
                "feature": "rd_staff_share",
                "unit": "pct",
                "bands": [{"value": 0.3, "points": 15}, {"points": 0}],
            }
        },
    }
    _write(tmp_path, "variant.yaml", variant)
    books = {b.id: b for b in read_rulebook_files(tmp_path)}
    rb = books["testprov-2022-specialised_sme"]
    assert rb.node("local_export").max_points == 15
    with pytest.raises(KeyError):
        rb.node("local_indicators")
    assert rb.examples == []  # a variant brings its own examples


def test_extends_with_unknown_replacement_id_fails(tmp_path):
    _copy_rulebooks(tmp_path, "miit-2022-specialised_sme")
    _write(
        tmp_path,
        "v.yaml",
        {
            "id": "v",
            "extends": "miit-2022-specialised_sme",
            "replace": {"nope": {"id": "x", "kind": "manual", "label": "x"}},
        },
    )
    with pytest.raises(RulebookError, match="nope"):
        read_rulebook_files(tmp_path)


def test_2022_specialised_local_indicators_are_manual_15_points():
    rb = next(b for b in ALL if b.id == "miit-2022-specialised_sme")
    item = rb.node("local_indicators")
    assert isinstance(item, ManualItem) and item.max_points == 15
