"""On your own data: ``lifecycle run`` on a directory of vendor exports prints the summary;
``lifecycle up`` serves webhooks that reach the worker (watched with ``lifecycle tail``), and
Ctrl-C stops everything it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from pipeline.broker import free_port
from pipeline.sample import SampleConfig, generate
from pipeline.settings import Settings

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vendors" / "segment" / "group.json"


def env(tmp: Path, **values: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in Settings.env_names()}
    return base | {"LIFECYCLE_DATA_DIR": str(tmp / "data")} | values


def write_exports(directory: Path) -> int:
    """The sample as each vendor's native export, in names that do not say the vendor: NDJSON for
    some, a JSON array for the others."""
    by_vendor: dict[str, list[dict]] = defaultdict(list)
    for record in generate(SampleConfig(accounts=6, seed=5)):
        by_vendor[record.vendor].append(record.payload)
    directory.mkdir(parents=True)
    for n, (vendor, payloads) in enumerate(sorted(by_vendor.items())):
        if n % 2:
            (directory / f"export-{n}.json").write_text(json.dumps(payloads))
        else:
            (directory / f"export-{n}.ndjson").write_text("".join(json.dumps(p) + "\n" for p in payloads))
    return sum(map(len, by_vendor.values()))


def test_run_on_a_directory_of_exports_prints_the_summary(tmp_path: Path) -> None:
    records = write_exports(tmp_path / "exports")
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(tmp_path / "exports"), "--no-progress"],
                         env=env(tmp_path), capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"fed {records} records" in out.stdout
    for vendor in ("hubspot", "salesforce", "segment", "stripe", "zendesk"):
        assert f"({vendor})" in out.stdout  # told from the content
    assert "== Accounts by current stage ==" in out.stdout and "== SLA breaches ==" in out.stdout
    transitions = int(re.search(r"Transitions by stage pair \((\d+) unique", out.stdout).group(1))
    assert transitions > 6
    db = tmp_path / "data" / "run" / "readmodel.db"
    assert db.is_file()  # left for `lifecycle report`
    report = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", "funnel", "--db", f"sqlite:///{db}",
                             "--format", "json"], env=env(tmp_path), capture_output=True, text=True, timeout=60)
    assert report.returncode == 0 and json.loads(report.stdout)["stages"]


def descendants(pid: int) -> set[int]:
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return {int(c) for c in children} | {d for c in children for d in descendants(int(c))}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_up_serves_webhooks_that_reach_the_worker_and_stops_with_no_orphan(tmp_path: Path) -> None:
    port = free_port()
    up = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "up", "--webhook-port", str(port),
                           "--allow-unsigned", "segment"], env=env(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        shown: dict[str, str] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            assert line, "lifecycle up exited early"
            if "=" in line and line.startswith("KAFKA_"):
                shown.update([line.strip().split("=", 1)])
            if line.startswith("ready"):
                break
        bootstrap = shown["KAFKA_BOOTSTRAP_SERVERS"]
        children = descendants(up.pid)
        assert len(children) >= 3  # broker, worker, webhook receiver

        request = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/segment", data=FIXTURE.read_bytes(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 202)

        tail = [sys.executable, "-m", "pipeline.cli", "tail", "identity", "--from-beginning", "--no-follow",
                "--account", "acct:hubspot.company:18274650011"]
        seen = ""
        deadline = time.monotonic() + 60
        while "segment.group:ws_northwind" not in seen and time.monotonic() < deadline:
            time.sleep(1)
            seen = subprocess.run(tail, env=env(tmp_path, KAFKA_BOOTSTRAP_SERVERS=bootstrap), capture_output=True,
                                  text=True, timeout=60).stdout
        assert "segment.group:ws_northwind" in seen, seen  # the worker resolved the webhook's event
        as_json = subprocess.run([*tail, "--json"], env=env(tmp_path, KAFKA_BOOTSTRAP_SERVERS=bootstrap),
                                 capture_output=True, text=True, timeout=60).stdout.splitlines()
        assert all(json.loads(line)["type"] in ("identity_decision", "account_merged") for line in as_json)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
    assert up.returncode == 0
    time.sleep(0.5)
    assert not [pid for pid in children if alive(pid)], "lifecycle up left processes behind"
