"""The shared parts of benchmarks/: results sections that reruns replace, and the run
comparison that the paper's tables come from (on the toy problem, for its logic only)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from selfiter.config import config_from_dict
from selfiter.training import train
from tests.core.toy_plugin import toy_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import compare_runs  # noqa: E402
from common import write_section  # noqa: E402


def test_a_section_is_appended_then_replaced_and_the_prose_around_it_kept(tmp_path):
    page = tmp_path / "results.md"
    write_section(page, "a", "first", "Results")
    assert page.read_text().startswith("# Results\n\n## `a`\n\n<!-- benchmark: a -->\nfirst\n")
    page.write_text(page.read_text() + "\nHand-written notes.\n")
    write_section(page, "b", "other", "Results")
    write_section(page, "a", "second", "Results")
    text = page.read_text()
    assert "first" not in text and text.count("second") == 1 and "other" in text
    assert "Hand-written notes." in text
    assert text.index("second") < text.index("Hand-written notes.") < text.index("other")


def test_compare_runs_scores_every_run_per_iteration_with_a_cascade_capped(tmp_path, capsys):
    sir = train(config_from_dict(toy_config(steps=150)), tmp_path / "sir", progress=False)
    cr = train(config_from_dict(toy_config(mode="cascade", stages=2, steps=60)), tmp_path / "cr",
               progress=False)
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump(toy_config()))
    out, png = tmp_path / "cmp.md", tmp_path / "cmp.png"
    assert compare_runs.main([str(cfg), "--run", f"SIR={sir}", "--run", f"CR, 2 stages={cr}",
                              "--iterations", "3", "--title", "SIR vs CR", "--out", str(out),
                              "--plot", str(png)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| SIR")
            or line.startswith("| CR")]
    sir_row, cr_row = (r.split(" | ") for r in rows)
    assert sir_row[1:3] == ["sir", "mlp"] and cr_row[1:3] == ["cascade", "mlp"]
    assert sir_row[5] == f"{150 * 64:,}" and cr_row[5] == f"{2 * 60 * 64:,}"
    assert all(c for c in sir_row[7:10]) and cr_row[9] == ""  # a 2-stage cascade has no 3rd step
    assert float(sir_row[9]) < float(sir_row[7])  # iterating helps on the toy problem
    assert png.stat().st_size > 1000 and "![SIR vs CR](cmp.png)" in out.read_text()
