"""``lifecycle whatif`` from export files: the diff on the demo sample, the HTML page and its
charts, a directory of exports, and a broken proposal refused before anything is replayed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from schemas.accounts import partition_of
from tests.whatif.helpers import SHIPPED, kickoff_journey, sample_file

FROZEN = "2026-11-02T12:00:00Z"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("whatif-cmd")
    return SimpleNamespace(tmp=tmp, sample=sample_file(tmp, 25), proposed=kickoff_journey(tmp, 3))


def whatif(*args: str) -> subprocess.CompletedProcess[str]:
    runner = CliRunner()
    result = runner.invoke(main, ["whatif", "--no-progress", *args], env={"LIFECYCLE_FROZEN_NOW": FROZEN,
                                                                         "KAFKA_BOOTSTRAP_SERVERS": ""})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def test_diff_on_the_demo_sample_as_json_and_html(files: SimpleNamespace):
    html = files.tmp / "whatif.html"
    run = whatif("--journey", str(files.proposed), "--from-files", str(files.sample), "--format", "json",
                 "--html", str(html))
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    changed = {(r["section"], r["key"]) for r in result["rows"] if r["baseline"] != r["proposed"]}
    assert changed and {s for s, _ in changed} <= {"sla", "sla_team"}
    assert {k for s, k in changed if s == "sla"} == {"customer-kickoff"}
    moved = result["breaches"]
    assert moved and all(b["sla_id"] == "customer-kickoff" and b["baseline"] == "none" for b in moved)
    kickoff = {r["metric"]: r for r in result["rows"] if r["section"] == "sla" and r["key"] == "customer-kickoff"}
    assert kickoff["breached"]["delta"] == len(moved)
    assert result["rate_events_per_second"] > 0 and "events/s" in run.stderr

    page = html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)   # nothing fetched: viewable offline
    funnel = re.search(r'<svg id="funnel".*?</svg>', page, re.S)
    assert funnel
    reached = {r["key"]: r for r in result["rows"] if r["section"] == "conversion" and r["metric"] == "reached"}
    for side in ("current", "proposed"):
        bars = re.findall(rf'<rect class="bar {side}" data-key="([^"]+)" data-value="([^"]+)"', funnel.group(0))
        assert [k for k, _ in bars] == list(reached)
        column = "baseline" if side == "current" else "proposed"
        assert [float(v) for _, v in bars] == [reached[k][column] for k in reached]
    compliance = re.search(r'<svg id="sla-compliance".*?</svg>', page, re.S)
    assert compliance
    bars = dict(re.findall(r'<rect class="bar proposed" data-key="([^"]+)" data-value="([^"]+)"', compliance.group(0)))
    assert float(bars["customer-kickoff"]) == kickoff["compliance"]["proposed"] < kickoff["compliance"]["baseline"]


def test_html_screenshot_in_headless_chromium(files: SimpleNamespace):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not on this machine: no screenshot taken")
    html, shot = files.tmp / "shot.html", files.tmp / "whatif.png"
    assert whatif("--journey", str(files.proposed), "--from-files", str(files.sample), "--html",
                  str(html)).returncode == 0
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--window-size=1000,1400",
                    f"--screenshot={shot}", html.as_uri()], capture_output=True, timeout=90, check=True)
    assert shot.stat().st_size > 10_000


def test_a_directory_of_exports_is_the_same_history(files: SimpleNamespace):
    """The sample split into two files in a directory replays as the one file did."""
    lines = files.sample.read_bytes().splitlines(keepends=True)
    directory = files.tmp / "exports"
    directory.mkdir()
    (directory / "part-1.jsonl").write_bytes(b"".join(lines[: len(lines) // 2]))
    (directory / "part-2.jsonl").write_bytes(b"".join(lines[len(lines) // 2:]))
    one = whatif("--journey", str(files.proposed), "--from-files", str(files.sample), "--format", "csv")
    split = whatif("--journey", str(files.proposed), "--from-files", str(directory), "--format", "csv")
    assert one.returncode == split.returncode == 0
    assert split.stdout == one.stdout and "customer-kickoff" in one.stdout


def test_an_invalid_proposal_fails_before_any_replay(files: SimpleNamespace):
    broken = files.tmp / "broken.yaml"
    broken.write_text(SHIPPED.read_text().replace("    owner: sales\n    rank: 3\n", "    rank: 3\n"))
    unusable = files.tmp / "export.ndjson"   # a replay would refuse it: no vendor given or named
    unusable.write_text('{"id": 1}\n')
    run = whatif("--journey", str(broken), "--from-files", str(unusable))
    assert run.returncode == 2
    assert run.stderr.strip() == f"{broken}: stages[2].owner: Field required"
    assert "replay" not in run.stderr


def test_accounts_route_as_the_worker_routes_them():
    from pipeline.app import LifecyclePipeline

    for partitions in (1, 2, 4, 12):
        worker = SimpleNamespace(settings=SimpleNamespace(partitions=partitions))
        for account in ("acct:hubspot.company:1", "acct:stripe.customer:cus_9", "acct:segment.group:ws-ü"):
            assert partition_of(account, partitions) == LifecyclePipeline.partition_of(worker, account)  # type: ignore[arg-type]


def test_accounts_that_change_stage_say_which_rule(files: SimpleNamespace):
    """Onboarding only by a kickoff (the product's "Onboarding Started" rule removed): accounts
    that were in onboarding by that rule are no longer there, and each says so."""
    rule = "      - kind: product.track\n        where: {event: [Onboarding Started]}\n"
    text = SHIPPED.read_text()
    assert text.count(rule) == 1
    proposed = files.tmp / "kickoff-only.yaml"
    proposed.write_text(text.replace(rule, ""))
    demo = sample_file(files.tmp, 40)   # the demo sample: one account got there by that rule
    run = whatif("--journey", str(proposed), "--from-files", str(demo), "--format", "json")
    assert run.returncode == 0, run.stderr
    changes = json.loads(run.stdout)["accounts"]
    assert changes
    for change in changes:
        assert change["baseline_stage"] == "onboarding" and change["proposed_stage"] != "onboarding"
        assert "stages[3].entry[1] (product.track where {'event': ['Onboarding Started']})" in change["baseline_rule"]
        assert change["proposed_rule"].startswith(f"{change['proposed_stage']} on ")


def test_one_process_per_journey_gives_the_same_diff(files: SimpleNamespace):
    """``--jobs 2`` (each journey in its own process, streaming into its own read model) and
    ``--jobs 1`` (both journeys in one pass) diff alike, accounts that change stage included."""
    rule = "      - kind: product.track\n        where: {event: [Onboarding Started]}\n"
    proposed = files.tmp / "kickoff-only-jobs.yaml"
    proposed.write_text(SHIPPED.read_text().replace(rule, ""))
    demo = sample_file(files.tmp, 40)
    runs = []
    for jobs in ("1", "2"):
        run = whatif("--journey", str(proposed), "--from-files", str(demo), "--format", "json", "--jobs", jobs,
                     "--since", "2026-02-01", "--until", "2026-09-01")
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        for timing in ("seconds", "rate_events_per_second"):
            result.pop(timing)
        runs.append(result)
    assert runs[0]["accounts"] and runs[0]["breaches"] is not None
    assert runs[0] == runs[1]
