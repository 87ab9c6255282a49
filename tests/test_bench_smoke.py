"""`make bench` runs end to end: tiny counts, one page, one engine; the JSON has the expected shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.bench
@pytest.mark.slow
def test_quick_bench_writes_figures_and_targets(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    bench = subprocess.Popen(
        [sys.executable, "-m", "benchmarks", "--quick", "--engines", "playwright", "--pages", "static",
         "--skip-leak", "--skip-peers", "--json", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = bench.communicate(timeout=100)
    finally:
        if bench.poll() is None:
            bench.terminate()  # the bench stops what it started
            bench.communicate(timeout=30)
    assert bench.returncode == 0, output[-3000:]
    assert "service p50 / floor p50" in output
    results = json.loads(out.read_text())
    engine = results["engines"]["playwright"]
    assert engine["cold_start_ms"][0] > 0
    served = [*engine["renders"]["static"].values(), *engine["media"]["static"].values()]
    for series in (engine["floor"]["static"], engine["baseline"]["static"], *served):
        assert series["errors"] == 0
        assert series["n"] >= 1
        assert 0 < series["p50_ms"] <= series["p95_ms"]
        assert series["bytes_p50"] > 1000  # a real PNG of the page
    assert set(engine["renders"]["static"]) == {"1", "2"}
    assert engine["memory"]["peak_rss_mb_at_max_concurrency"] > 50  # Chromium is counted, not just Python
    names = {check["name"] for check in engine["targets"]}
    assert "launch-per-request p50 / service p50" in names
    assert all(isinstance(check["ok"], bool) for check in engine["targets"])
    assert "peers" not in engine  # --skip-peers
    idle = engine["idle"]  # the idle period, then the tree's memory and the first render after it
    assert idle["tree"]["pss_mb"] > 50
    assert 0 < idle["tree"]["pss_mb"] <= idle["tree"]["rss_mb"]
    assert idle["first_after"]["n"] == 1
    assert idle["first_after"]["errors"] == 0
    assert "first render after idle release / warm p50" in names


@pytest.mark.bench
@pytest.mark.slow
def test_quick_soak_reads_memory_after_each_mark(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    soak = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--soak", "--engines", "playwright",
         "--recycle-after", "8", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert soak.returncode == 0, (soak.stdout + soak.stderr)[-3000:]
    memory = json.loads(out.read_text())["engines"]["playwright"]["memory"]
    assert memory["leak_renders"] == [5, 10, 20]
    assert memory["recycle_after"] == 8
    for mark in (5, 10, 20):
        assert memory[f"tree_after_{mark}"]["rss_mb"] > 50  # Chromium is counted, not just Python
    assert "RSS after 20 / after 5 renders" in soak.stdout
