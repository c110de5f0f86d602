"""The journey loader: the shipped default is valid; broken files say file, field and problem."""

from __future__ import annotations

import copy

import pytest
import yaml

from pipeline.journey import JourneyError, load_journey
from schemas.events import LifecycleEvent
from tests.core.factories import ev

DEFAULT = load_journey()
BASE = DEFAULT.model_dump(by_alias=True, mode="json", exclude={"slas", "handoffs", "calendar"})


def write(tmp_path, data, name="journey.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def broken(tmp_path, mutate):
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(JourneyError) as info:
        load_journey(write(tmp_path, data))
    return str(info.value)


def test_default_has_the_shared_stage_language():
    assert [s.id for s in DEFAULT.path] == ["MQL", "SQL", "closed-won", "onboarding", "adoption", "renewal", "advocate"]
    assert {s.id for s in DEFAULT.stages} >= {"churned", "re-engaged"}
    assert DEFAULT.owner_of("SQL") == "sales" and DEFAULT.owner_of("onboarding") == "customer_success"


def test_round_trip_of_a_custom_file(tmp_path):
    assert [s.id for s in load_journey(write(tmp_path, BASE)).stages] == [s.id for s in DEFAULT.stages]


def test_missing_owner_names_file_and_field(tmp_path):
    msg = broken(tmp_path, lambda d: d["stages"][2].pop("owner"))
    assert "journey.yaml: stages[2].owner: Field required" in msg


def test_bad_event_kind_is_explained(tmp_path):
    msg = broken(tmp_path, lambda d: d["stages"][0]["entry"][0].update(kind="dealwon"))
    assert "stages[0].entry[0].kind" in msg and "'<source>.<name>'" in msg


def test_unknown_operator(tmp_path):
    msg = broken(tmp_path, lambda d: d["stages"][0]["entry"][0].update(where={"amount": {"greater": 3}}))
    assert "unknown operator" in msg and "greater" in msg


def test_unknown_stage_reference(tmp_path):
    msg = broken(tmp_path, lambda d: d["stages"][7].update(allowed_from=["adoption", "lost-in-space"]))
    assert "journey.yaml: " in msg and "lost-in-space" in msg and "allowed_from" in msg


def test_duplicate_stage_ids(tmp_path):
    msg = broken(tmp_path, lambda d: d["stages"][1].update(id="MQL"))
    assert "unique" in msg and "MQL" in msg


def test_regression_stage_needs_allowed_from(tmp_path):
    msg = broken(tmp_path, lambda d: d["stages"][7].pop("allowed_from"))
    assert "churned" in msg and "allowed_from" in msg


def test_unknown_top_level_key(tmp_path):
    msg = broken(tmp_path, lambda d: d.update(stagez=[]))
    assert "stagez" in msg and "Extra inputs are not permitted" in msg


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(JourneyError, match="journey.yaml: not valid YAML"):
        load_journey(write(tmp_path, "stages: [unclosed"))
    with pytest.raises(JourneyError, match="nope.yaml: cannot read"):
        load_journey(tmp_path / "nope.yaml")
    with pytest.raises(JourneyError, match="expected a mapping"):
        load_journey(write(tmp_path, "- just a list"))


def test_predicates():
    def stages(e: LifecycleEvent) -> list[str]:
        return [s.id for s in DEFAULT.matching_stages(e)]

    assert stages(ev("crm.deal_won", deal_type="new_business")) == ["closed-won", "re-engaged"]
    assert stages(ev("crm.deal_won")) == ["closed-won", "re-engaged"]  # ne matches a missing attribute
    assert stages(ev("crm.deal_won", deal_type="renewal")) == ["renewal", "re-engaged"]
    assert stages(ev("product.track", event="workspace activated")) == ["adoption"]  # case-insensitive
    assert stages(ev("billing.invoice_paid", billing_reason="subscription_cycle", plan_interval="month")) == []
    assert stages(ev("billing.invoice_paid", billing_reason="subscription_cycle", plan_interval="year")) == ["renewal"]


def test_deal_stages_map_custom_pipeline_stage_ids_to_won_and_lost(tmp_path):
    from datetime import datetime, timezone

    from schemas.events import LifecycleEvent, SourceKind

    data = DEFAULT.model_dump(by_alias=True, mode="json")
    data["deal_stages"] = [{"pipeline": "p-1", "won": ["9c2f-won"], "lost": ["9c2f-lost"]}]
    journey = load_journey(write(tmp_path, data))

    def changed(stage: str, pipeline: str) -> LifecycleEvent:
        at = datetime(2026, 1, 5, tzinfo=timezone.utc)
        return LifecycleEvent(event_id=f"hubspot:{stage}", source=SourceKind.CRM, vendor="hubspot",
                              kind="crm.deal_stage_changed", occurred_at=at, ingested_at=at,
                              identifiers=["hubspot.deal:1"], attributes={"stage": stage, "pipeline": pipeline})

    assert [s.id for s in journey.matching_stages(changed("9c2f-won", "p-1"))] == ["closed-won", "re-engaged"]
    assert [s.id for s in journey.matching_stages(changed("9c2f-lost", "p-1"))] == ["MQL"]
    assert journey.matching_stages(changed("9c2f-won", "other")) == []       # per pipeline
    assert DEFAULT.matching_stages(changed("9c2f-won", "p-1")) == []         # unmapped: stays a stage change
