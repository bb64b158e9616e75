"""End to end: the demo at a tiny size, then the leaderboard it wrote is checked against its inputs.

In CI (`.ci/run`) the demo has already run once, from the installed wheel in a fresh virtual
environment and an unrelated folder; KDBENCH_TEST_DEMO_DIR points at that run and these tests check
its files instead of running the same demo a second time. Elsewhere the fixture runs it in-process.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest

from kdbench.cli.demo_plan import SIZES, STUDENTS, run_demo

pytestmark = pytest.mark.slow
DEMO_LOG = "kdbench-demo.log"  # .ci/run: `kdbench demo --size tiny --out DIR > DIR/kdbench-demo.log 2>&1`


def _steps_from_log(log: Path) -> list[str]:
    """The command lines a `kdbench demo` run announced (its `step i/n at T s: $ kdbench ...` lines)."""
    found = [re.match(r"step \d+/\d+ at \d+ s: \$ (kdbench .*)$", line) for line in log.read_text().splitlines()]
    return [m.group(1) for m in found if m]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    given = os.environ.get("KDBENCH_TEST_DEMO_DIR")
    if given:
        return Path(given), _steps_from_log(Path(given) / DEMO_LOG)
    out = tmp_path_factory.mktemp("demo")
    timings = run_demo(out, "tiny")
    return out, list(timings)


def test_tiny_demo_searches_scratch_and_one_kd_method(demo):
    out, _ = demo
    space = (out / "demo_space.toml").read_text()
    assert list(SIZES["tiny"].methods) == ["scratch", "vanilla"]
    assert 'method = ["scratch", "vanilla"]' in space


def test_kd_trains_on_the_unlabelled_pool_and_scratch_does_not(demo):
    out, _ = demo
    assert "unlabelled = 1  #" in (out / "demo_space.toml").read_text()
    seen = {}
    for path in (out / "runs" / "demo" / "trials").rglob("metrics.json"):
        record = json.loads(path.read_text())
        seen.setdefault(record["method"], []).append(record["frames_seen"]["unlabelled"])
    assert seen["scratch"] and not any(seen["scratch"])
    assert seen["vanilla"] and all(n > 0 for n in seen["vanilla"])


def _rows(out):
    with open(out / "leaderboard" / "leaderboard.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _num(text):
    return float(text) if text not in ("", None) else None


def test_every_stage_ran_and_wrote_its_outputs(demo):
    out, timings = demo
    assert [line.split()[1] for line in timings] == [
        "data", "data", "data", "teacher", "teacher", "search", "export", "export", "profile", "profile", "leaderboard"]
    for path in ("store/manifest.json", "runs/demo/study.json", "runs/demo/statistics.json", "export/manifest.json",
                 "profiles/x86/results.json", "profiles/rpi4/results.json", "leaderboard/README.md"):
        assert (out / path).is_file(), path


def test_every_student_is_on_the_board_for_both_targets(demo):
    out, _ = demo
    rows = _rows(out)
    for target in ("x86", "rpi4"):
        students = {r["student"] for r in rows if r["target"] == target}
        assert set(STUDENTS) <= students, (target, students)
    readme = (out / "leaderboard" / "README.md").read_text()
    for student in STUDENTS:
        assert student in readme


def test_pareto_flags_match_the_numbers(demo):
    out, _ = demo
    rows = [r for r in _rows(out) if r["front"] not in ("", None)]
    assert rows
    for target in {r["target"] for r in rows}:
        group = [r for r in rows if r["target"] == target]
        pts = [(_num(r["val_accuracy"]), _num(r["latency_p50_ms"]), _num(r["size_mb"]), int(r["front"])) for r in group]

        def dominates(a, b):
            better_or_equal = a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2]
            return better_or_equal and (a[0] > b[0] or a[1] < b[1] or a[2] < b[2])

        for p in pts:
            if p[3] == 1:
                assert not any(dominates(q, p) for q in pts), (target, p)
            else:
                assert any(dominates(q, p) and q[3] == p[3] - 1 for q in pts), (target, p)


def test_constraints_are_evaluated_from_the_profile_numbers(demo):
    out, _ = demo
    rpi4 = [r for r in _rows(out) if r["target"] == "rpi4" and r["front"] not in ("", None)]
    assert rpi4 and all(r["estimated"] == "True" for r in rpi4)
    for r in rpi4:
        fps, mem = _num(r["fps"]), _num(r["model_memory_mb"])
        verdict = r["verdict"]  # rpi4 rows are estimates: a band across a limit is "uncertain"
        assert verdict in ("meets", "fails", "uncertain"), r
        assert verdict != "meets" or (fps >= 30 and mem < 50), r
        assert verdict != "fails" or (fps < 30 or mem >= 50), r


def test_statistics_compare_kd_with_scratch_for_every_student(demo):
    out, _ = demo
    stats = json.loads((out / "runs" / "demo" / "statistics.json").read_text())
    text = json.dumps(stats)
    for student in STUDENTS:
        assert student in text
