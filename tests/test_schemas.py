"""The public contract: JSON Schemas export, and they accept what the pipeline emits."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import jsonschema
from click.testing import CliRunner

from pipeline.cli import main
from schemas import topics as T
from schemas.base import UtcDatetime
from schemas.transitions import StageTransition


def test_export_writes_valid_schemas_that_accept_real_records(tmp_path):
    result = CliRunner().invoke(main, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("*.schema.json")}
    assert {"StageTransition.schema.json", "Handoff.schema.json", "SlaBreach.schema.json",
            "LifecycleEvent.schema.json", "RawRecord.schema.json", "DeadLetter.schema.json",
            "AccountBatch.schema.json", "ParsedBatch.schema.json"} <= set(files)
    assert files["ParsedBatch.schema.json"]["x-topics"] == ["lifecycle.parsed.<source>.<partition>"]
    for schema in files.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    schema = files["StageTransition.schema.json"]
    assert schema["x-topics"] == [T.STAGE_TRANSITIONS]
    assert schema["x-cloudevents-types"] == ["org.lifecyclepipeline.lifecycle.stage.transitioned"]
    assert "org.lifecyclepipeline.lifecycle.sla.met_late" in files["SlaBreach.schema.json"]["x-cloudevents-types"]
    assert "x-cloudevents-types" not in files["RawRecord.schema.json"]  # inputs are not CloudEvents
    now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    record = StageTransition(transition_id=StageTransition.make_id("a", "SQL", "e1"), account_id="a",
                             from_stage="MQL", to_stage="SQL", occurred_at=now, trigger_event_id="e1",
                             trigger_kind="crm.lead_qualified", to_owner_team="sales", emitted_at=now)
    jsonschema.validate(json.loads(record.to_json()), schema)
    bad = json.loads(record.to_json()) | {"to_stage": 7}
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("schema accepted a non-string stage")


def test_naive_datetimes_are_refused_at_the_contract():
    import pytest
    from pydantic import TypeAdapter, ValidationError

    with pytest.raises(ValidationError, match="timezone"):
        TypeAdapter(UtcDatetime).validate_python(datetime(2026, 1, 1))
    assert TypeAdapter(UtcDatetime).validate_python("2026-01-01T10:00:00+02:00").hour == 8


def test_a_utc_time_read_from_json_stays_as_it_came_and_behaves_as_timezone_utc():
    from datetime import timedelta

    from pydantic import TypeAdapter

    utc = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
    adapter = TypeAdapter(UtcDatetime)
    for text in ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00+00:00"):
        read = adapter.validate_json(f'"{text}"')
        assert read.utcoffset() == timedelta(0)
        assert (read, hash(read), read.isoformat(), str(read)) == (utc, hash(utc), utc.isoformat(), str(utc))
        assert adapter.dump_json(read) == adapter.dump_json(utc) == b'"2026-01-01T10:00:00Z"'
    assert adapter.validate_python(utc) is utc
    shifted = adapter.validate_json('"2026-01-01T12:00:00+02:00"')
    assert shifted == utc and shifted.tzinfo is timezone.utc
