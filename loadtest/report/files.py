"""Where a result goes: printed as its table, written as report.json (and chart.png), and
where the folder is by default (``loadtest/results/``, git-ignored)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from loadtest.model.compare import Comparison
from loadtest.model.encode import to_json
from loadtest.model.idle import IdleResult
from loadtest.model.run import RunResult
from loadtest.model.soak import SoakResult
from loadtest.model.step import StepResult
from loadtest.report.soak_text import render_soak
from loadtest.report.text import render_idle, render_run, render_step

RESULTS = Path(__file__).resolve().parent.parent / "results"

Result = RunResult | StepResult | IdleResult | SoakResult


def default_out(kind: str, target: str) -> Path:
    return RESULTS / f"{kind}-{target}-{time.strftime('%Y%m%d-%H%M%S')}"


def render(result: Result) -> str:
    if isinstance(result, SoakResult):
        return render_soak(result)
    if isinstance(result, StepResult):
        return render_step(result)
    if isinstance(result, IdleResult):
        return render_idle(result)
    return render_run(result)


def save(result: Result, out: Path, chart: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json"]
    write_json(to_json(result), out / "report.json")
    if chart and not isinstance(result, IdleResult) and result.timeline:
        from loadtest.report.charts import draw_chart, draw_soak_chart

        path = out / "chart.png"
        if isinstance(result, SoakResult):
            draw_soak_chart(result, path)
        else:
            draw_chart(result, path)
        written.append(path)
    return written


def save_comparison(comparison: Comparison, out: Path) -> Path:
    """compare.json: the rows only, as other tools read them."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "compare.json"
    write_json(to_json(comparison.rows), path)
    return path


def write_json(value: object, path: Path) -> None:
    path.write_text(json.dumps(value, indent=1, default=_json_default))


def _json_default(value: object) -> object:
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if tolist is not None:
        return tolist()
    raise TypeError(f"not JSON: {type(value)}")
