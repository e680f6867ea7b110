"""``python -m loadtest soak``, short: two real hub nodes, each killed with ``kill -9`` and
restarted while phones keep sending; nothing acknowledged is lost and nothing is stored twice.

The long version (10 minutes, 1,000 phones) is run by hand before a release; its result is in
docs/reliability.md under "Soak".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kit  # its own servers: .ci/run runs it once, not per backend

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(170)
def test_short_soak_with_node_kills_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak"
    command = [
        sys.executable, "-m", "loadtest", "soak",
        "--clients", "40", "--rate", "40", "--duration", "25",
        "--kill-every", "8", "--down-for", "3", "--drain", "20",
        "--final-sync-timeout", "60", "--out", str(out), "--quiet",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=160, check=False
    )
    context = f"stdout:\n{done.stdout[-6000:]}\nstderr:\n{done.stderr[-6000:]}"
    report_path = out / "report.json"
    assert report_path.exists(), f"no report\n{context}"
    report = json.loads(report_path.read_text())
    totals, kills = report["totals"], report["kills"]

    assert done.returncode == 0, context
    assert report["passed"] is True, context
    assert totals["acked"] > 0, context
    assert totals["lost"] == 0, totals["lost_samples"]
    assert totals["duplicates"] == 0, totals["duplicate_samples"]
    assert totals["corrupted"] == 0, context
    assert totals["final_sync_failed"] == 0, context
    assert kills["kills"] >= 2, kills["events"]
    assert kills["restarts"] == kills["kills"], kills["events"]
    assert kills["restart_failures"] == 0 and kills["unexpected_exits"] == 0, kills["events"]
    assert report["reconnects"]["reconnects"] > 0, "the killed nodes' phones came back"
    assert report["reconnects"]["gave_up"] == 0, report["reconnects"]
    assert any(r.get("events") for r in report["timeline"]), "kills are on the timeline"
    assert (out / "chart.png").stat().st_size > 0
