"""The load-test kit works end to end: a tiny real run, as a subprocess, like an operator.

Correctness smoke tests, not performance tests: every message sent is acked and delivered
exactly once, and the report files are written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kit  # its own servers: .ci/run runs it once, not per backend

ROOT = Path(__file__).resolve().parent.parent


def run_kit(out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    command = [
        sys.executable, "-m", "loadtest", "run",
        "--clients", "20", "--rate", "20", "--duration", "5", "--drain", "10",
        "--expect-loss", "0", "--out", str(out), "--quiet", *args,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False
    )
    report_path = out / "report.json"
    assert report_path.exists(), f"no report\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done, json.loads(report_path.read_text())


def assert_clean(done: subprocess.CompletedProcess[str], report: dict) -> None:
    context = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, context
    totals = report["totals"]
    assert totals["sent"] > 0, context
    assert totals["acked"] == totals["sent"], context
    assert totals["delivered"] == totals["sent"], context
    assert totals["lost"] == 0, context
    assert totals["duplicated"] == 0, context
    assert totals["corrupted"] == 0, context
    assert report["passed"] is True
    assert report["timeline"], "a row per second"


@pytest.mark.timeout(150)
def test_spawned_hub_delivers_every_message(tmp_path: Path) -> None:
    done, report = run_kit(tmp_path / "hub", "--spawn-hubs", "1")
    assert_clean(done, report)
    assert report["target"] == "hub"
    assert report["mix"]["name"] == "chat"
    extras = report["extras"]
    assert extras.get("message:delivered:ok", 0) > 0, "receipts went through"
    assert not any(code.startswith("message:send") for code in report["errors"]), report["errors"]
    assert "server_cpu_avg" in report["resources"], "the spawned hub was monitored"
    assert (tmp_path / "hub" / "chart.png").stat().st_size > 0


@pytest.mark.timeout(150)
def test_python_relay_delivers_every_message(tmp_path: Path) -> None:
    done, report = run_kit(tmp_path / "relay", "--target", "python-relay", "--no-chart")
    assert_clean(done, report)
    assert report["target"] == "python-relay"
    assert report["errors"] == {}


@pytest.mark.timeout(150)
def test_push_mix_reaches_every_offline_phone(tmp_path: Path) -> None:
    """Half the recipients never connect: their messages are acked, never delivered live,
    and reach the kit's fake FCM as pushes; every conversation's last message is pushed."""
    done, report = run_kit(tmp_path / "push", "--mix", "push", "--no-chart")
    context = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, context
    totals, push = report["totals"], report["push"]
    assert report["mix"]["name"] == "push"
    assert totals["sent"] > 0 and totals["acked"] == totals["sent"], context
    assert totals["offline_acked"] > 0, context
    assert totals["delivered"] + totals["offline_acked"] == totals["sent"], context
    assert totals["lost"] == 0 and totals["duplicated"] == 0, context
    assert push["offline_recipients"] == report["population"]["pairs"] // 2
    assert push["offline_messages"] == totals["offline_acked"]
    assert 0 < push["message_pushes"] <= push["offline_messages"], push
    assert push["latency_ms"]["count"] == push["message_pushes"] and push["unmatched"] == 0
    assert push["conversations"] == push["offline_recipients"]
    assert push["last_not_pushed"] == 0, push
    assert push["hub_outcomes"].get("delivered") == push["message_pushes"], push
    assert push["queue_depth"]["by_second"], "the queue depth was sampled"
    assert push["unauthorized"] == 0 and push["problems"] == [], push
    assert "provider_cpu_avg" in report["resources"], "the fake was monitored"
    assert report["passed"] is True
