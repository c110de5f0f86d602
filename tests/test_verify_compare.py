"""The consistency verifier's comparison: what counts as lost, spurious, changed or a harmless duplicate."""

from __future__ import annotations

import pytest

from pipeline.drive.verify import (VIEWS, Comparison, compare, decode, field_diff, record_id, select_scenarios,
                             strip_processing_time, verdict, ScenarioResult, VerifyConfig, VerifyResult)


def tr(rid: str, stage: str = "SQL", emitted: str = "2026-01-01T00:00:00Z", **extra: object) -> tuple[str, dict]:
    return rid, {"transition_id": rid, "to_stage": stage, "emitted_at": emitted, **extra}


def test_identical_streams_are_ok():
    ref = [tr("a"), tr("b")]
    c = compare(ref, list(ref))
    assert c.ok
    assert (c.ref, c.got, c.lost, c.spurious, c.changed, c.duplicates) == (2, 2, [], [], [], 0)


def test_lost_and_spurious_are_by_id():
    c = compare([tr("a"), tr("b")], [tr("b"), tr("c")])
    assert c.lost == ["a"]
    assert c.spurious == ["c"]
    assert c.changed == []
    assert not c.ok
    assert c.examples["lost"][0]["id"] == "a" and '"transition_id":"a"' in c.examples["lost"][0]["reference"]
    assert c.examples["spurious"][0]["id"] == "c"


def test_changed_content_under_the_same_id_with_a_diff_of_the_fields():
    c = compare([tr("a", stage="SQL")], [tr("a", stage="MQL")])
    assert c.changed == ["a"] and not c.lost and not c.spurious
    assert c.examples["changed"] == [{"id": "a", "diff": ['to_stage: "SQL" != "MQL"']}]


def test_duplicates_with_identical_content_are_allowed_and_counted():
    c = compare([tr("a"), tr("b")], [tr("a"), tr("a", emitted="2026-05-05T00:00:00Z"), tr("a"), tr("b")])
    assert c.ok
    assert c.duplicates == 2
    assert c.got_records == 4 and c.got == 2
    assert c.examples["duplicates"] == [{"id": "a", "records": 3}]


def test_an_id_seen_twice_with_different_content_is_changed_even_if_one_copy_matches():
    c = compare([tr("a", stage="SQL")], [tr("a", stage="SQL"), tr("a", stage="MQL")])
    assert c.changed == ["a"]
    assert not c.ok
    assert c.examples["changed"][0]["diff"] == ['to_stage: "SQL" != "MQL"']


def test_a_conflict_inside_the_reference_shows_when_it_is_compared_with_itself():
    ref = [tr("a", stage="SQL"), tr("a", stage="MQL")]
    assert compare(ref, ref).changed == ["a"]


def test_a_scenario_missing_one_of_the_references_contents_is_changed():
    c = compare([tr("a", stage="SQL"), tr("a", stage="MQL")], [tr("a", stage="MQL")])
    assert c.changed == ["a"]


@pytest.mark.parametrize("field", ["emitted_at", "failed_at", "ingested_at"])
def test_processing_time_fields_are_ignored_at_any_depth(field):
    def value(t: str) -> dict:
        return {"id": "x", field: t, "history": [{"stage": "SQL", field: t, "nested": {field: t, "keep": 1}}]}

    assert compare([("x", value("2026-01-01T00:00:00Z"))], [("x", value("2027-01-01T00:00:00Z"))]).ok
    assert strip_processing_time(value("t")) == {"id": "x", "history": [{"stage": "SQL", "nested": {"keep": 1}}]}


def test_only_processing_time_fields_are_ignored():
    ref = ("x", {"id": "x", "occurred_at": "2026-01-01T00:00:00Z", "detected_at": "2026-01-02T00:00:00Z"})
    got = ("x", {"id": "x", "occurred_at": "2026-01-01T00:00:00Z", "detected_at": "2026-01-03T00:00:00Z"})
    assert compare([ref], [got]).changed == ["x"]


def test_types_matter_not_just_equality():
    assert compare([("x", {"v": 1})], [("x", {"v": True})]).changed == ["x"]
    assert compare([("x", {"v": 1})], [("x", {"v": 1.0})]).changed == ["x"]


def test_field_diff_names_paths_lists_and_absent_keys():
    a = {"stage": "SQL", "history": [{"s": 1}, {"s": 2}], "gone": 1}
    b = {"stage": "SQL", "history": [{"s": 1}, {"s": 3}, {"s": 4}], "new": 2}
    assert field_diff(a, b) == ["gone: 1 != (absent)", "history: 2 items != 3 items", "history[1].s: 2 != 3",
                                "new: (absent) != 2"]
    assert len(field_diff({"k": list(range(50))}, {"k": list(range(1, 51))}, limit=3)) == 3


def test_examples_are_capped():
    c = compare([tr(str(i)) for i in range(10)], [])
    assert len(c.lost) == 10 and len(c.examples["lost"]) == 3


def test_ids_per_view():
    views = {v.name: v for v in VIEWS}
    handoff = {"handoff_id": "ho-1", "version": 3}
    assert record_id(views["handoffs"], handoff) == "ho-1#v3"
    merge = {"type": "account_merged", "merge_id": "merge-1"}
    decision = {"type": "identity_decision", "decision_id": "idd-1"}
    assert views["identity:merges"].select(merge) and not views["identity:merges"].select(decision)
    assert views["identity:decisions"].select(decision) and not views["identity:decisions"].select(merge)
    assert record_id(views["identity:merges"], merge) == "merge-1"
    # no id field: a content hash, so the record still counts (as lost or spurious)
    assert record_id(views["stage-transitions"], {"x": 1}).startswith("no-id:")
    assert decode(b"not json") == {"_unparseable": b"not json".hex()}


def test_scenario_selection():
    assert select_scenarios("all")[0] == "reference" and "kill9" in select_scenarios("")
    assert select_scenarios("kill9,reference,kill9") == ("reference", "kill9")
    with pytest.raises(ValueError, match="nope"):
        select_scenarios("kill9,nope")


def test_verdict_fails_on_any_lost_spurious_or_changed_but_not_on_duplicates():
    ok = compare([tr("a")], [tr("a"), tr("a")])
    bad = compare([tr("a")], [])
    result = VerifyResult(config=VerifyConfig(), now="2026-01-01T00:00:00+00:00", input_records=1, run_dir="x",
                          scenarios=[ScenarioResult("reference", "app", streams={"s": ok}),
                                     ScenarioResult("kill9", "app", streams={"s": ok})])
    assert result.ok and verdict(result).startswith("VERDICT: PASS")
    result.scenarios[1].streams["s"] = bad
    assert not result.ok and verdict(result) == "VERDICT: FAIL (kill9: 1 lost)"
    result.scenarios[1] = ScenarioResult("kill9", "app", error="boom")
    assert not result.ok and "kill9: error" in verdict(result)
    assert isinstance(ok, Comparison) and b'"ok": false' in result.to_json()
