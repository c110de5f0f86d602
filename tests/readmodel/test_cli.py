"""``lifecycle report ...`` through click's CliRunner, against a real database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import Engine

from pipeline.readmodel import ReadModelWriter
from pipeline.readmodel.cli import report
from tests.readmodel import story


@pytest.fixture
def db(engine: Engine, db_url: str) -> str:
    ReadModelWriter(engine).apply(story.story())
    return db_url


@pytest.fixture
def journey_file(tmp_path: Path) -> str:
    return str(story.write_journey(tmp_path / "journey.yaml"))


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(report, list(args), env=env, catch_exceptions=False)


def test_funnel_as_table_csv_and_json(db: str) -> None:
    period = ["--since", "2024-03-01", "--until", "2024-04-01"]
    table = run("funnel", "--db", db, *period)
    assert table.exit_code == 0, table.output
    assert "cohort_size: 4" in table.output
    line = next(ln for ln in table.output.splitlines() if ln.startswith("SQL "))
    assert line.split() == ["SQL", "path", "sales", "4", "3", "closed-won", "75.0%"]

    as_csv = run("funnel", "--db", db, *period, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert rows[0] == {"stage": "MQL", "kind": "path", "owner_team": "marketing", "reached": "3", "converted": "3",
                       "next_stage": "SQL", "conversion": "1.0"}
    assert rows[-3]["stage"] == "advocate" and rows[-3]["converted"] == ""

    as_json = json.loads(run("funnel", "--db", db, *period, "--format", "json").output)
    assert as_json["since"] == "2024-03-01T00:00:00Z" and as_json["cohort_size"] == 4
    assert {s["stage"]: s["reached"] for s in as_json["stages"]}["onboarding"] == 3


def test_time_in_stage_table_shows_readable_durations(db: str, journey_file: str) -> None:
    result = run("time-in-stage", "--db", db, "--journey", journey_file)
    assert result.exit_code == 0, result.output
    mql = next(ln for ln in result.output.splitlines() if ln.startswith("MQL "))
    assert mql.split() == ["MQL", "4", "4d", "12h", "5d"]
    as_csv = list(csv.DictReader(io.StringIO(run("time-in-stage", "--db", db, "--format", "csv").output)))
    assert as_csv[0] == {"stage": "MQL", "transitions": "4", "p50_seconds": "388800.0", "p90_seconds": "432000.0"}


def test_sla_uses_the_journey_and_prints_both_sections(db: str, journey_file: str) -> None:
    result = run("sla", "--db", db, "--journey", journey_file)
    assert result.exit_code == 0, result.output
    assert "[by_sla]" in result.output and "[by_team]" in result.output
    kickoff = next(ln for ln in result.output.splitlines() if ln.startswith("kickoff "))
    assert kickoff.split()[-5:] == ["2", "2", "1", "1", "0.0%"]
    env_json = json.loads(run("sla", "--db", db, "--format", "json", env={"LIFECYCLE_JOURNEY": journey_file}).output)
    assert {r["owner_team"]: r["compliance"] for r in env_json["by_team"]} == {"customer_success": 0.4, "sales": 0.8}


def test_speed_handoffs_churn_and_timeline(db: str) -> None:
    speed = json.loads(run("speed", "--db", db, "--since", "2024-03-01", "--until", "2024-04-01",
                           "--format", "json").output)
    assert {s["stage"]: s["median_seconds"] for s in speed["stages"]}["SQL"] == 3 * story.DAY

    handoffs = run("handoffs", "--db", db)
    assert "[attention]" in handoffs.output and "ho-A2" in handoffs.output
    rows = list(csv.DictReader(io.StringIO(run("handoffs", "--db", db, "--format", "csv").output)))
    assert [(r["from_team"], r["to_team"], r["late"]) for r in rows] == [
        ("marketing", "sales", "0"), ("sales", "customer_success", "1")]

    churn = json.loads(run("churn", "--db", db, "--as-of", "2024-09-17", "--window", "90", "--format", "json").output)
    assert [(r["segment"], r["churned"], r["matured"]) for r in churn["rows"]][0] == ("all", 1, 3)

    timeline = run("timeline", "A", "--db", db)
    assert timeline.exit_code == 0
    assert "SQL → closed-won" in timeline.output and "current_stage: churned" in timeline.output
    as_csv = list(csv.DictReader(io.StringIO(run("timeline", "A", "--db", db, "--format", "csv").output)))
    assert list(as_csv[0]) == ["at", "kind", "account_id", "ref_id", "summary", "status"]  # details: JSON only


def test_db_from_environment(db: str) -> None:
    result = run("handoffs", "--format", "json", env={"LIFECYCLE_DATABASE_URL": db})
    assert result.exit_code == 0 and len(json.loads(result.output)["by_pair"]) == 2


def test_fresh_database_gives_empty_report(tmp_path: Path) -> None:
    result = run("funnel", "--db", f"sqlite:///{tmp_path}/new/readmodel.db")
    assert result.exit_code == 0, result.output
    assert "cohort_size: 0" in result.output


@pytest.mark.parametrize("args, code, message", [
    (["funnel", "--since", "soon"], 2, "Invalid value for '--since': since: 'soon' is not a date"),
    (["funnel", "--since", "2024-04-01", "--until", "2024-03-01"], 2, "must be before until"),
    (["churn", "--window", "0"], 2, "Invalid value for '--window'"),
    (["funnel", "--format", "xml"], 2, "Invalid value for '--format'"),
    (["timeline", "nobody"], 1, "no account 'nobody' in the read model"),
    (["funnel", "--journey", "/nonexistent/journey.yaml"], 2, "cannot read"),
])
def test_bad_input_gives_a_clear_message(db: str, args: list[str], code: int, message: str) -> None:
    result = run(*args, "--db", db)
    assert result.exit_code == code
    assert message in result.output


def test_bad_database_url_is_a_usage_error() -> None:
    result = run("funnel", "--db", "mysql://u@h/db")
    assert result.exit_code == 2 and "unsupported database 'mysql'" in result.output
    unreachable = run("funnel", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    assert unreachable.exit_code == 1 and "cannot open the read model at" in unreachable.output


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (42, "42s"), (600, "10m"), (3600, "1h"), (5400, "1h 30m"), (86400, "1d"), (93784, "1d 2h"), (-90, "-1m"),
])
def test_durations_read_like_people_write_them(seconds: float, text: str) -> None:
    from pipeline.readmodel.render import human_duration

    assert human_duration(seconds) == text


def test_handoff_table_shows_wait_as_a_duration(db: str) -> None:
    line = next(ln for ln in run("handoffs", "--db", db).output.splitlines() if ln.startswith("sales "))
    assert line.split()[-1] == "5d"
