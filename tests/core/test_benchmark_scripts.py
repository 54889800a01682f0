"""The shared parts of benchmarks/: results sections that reruns replace, and the run
comparison that the paper's tables come from (on the toy problem, for its logic only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from selfiter.checkpoint import load_checkpoint
from selfiter.config import config_from_dict
from selfiter.training import train
from tests.core.toy_plugin import toy_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import compare_runs  # noqa: E402
import paper_comparisons  # noqa: E402
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


def test_the_cascades_of_the_comparison_get_sirs_samples_or_its_budget_per_stage():
    runs = dict((name, extra) for _, name, extra in paper_comparisons.plan(
        1200, [2, 3], 4, [0.1], [1.0], [0.5])["SIR vs cascaded regression"])
    assert runs["sir"] == []
    assert {"train.stages=2", "train.steps=600"} <= set(runs["cr2"])
    assert {"train.stages=3", "train.steps=400"} <= set(runs["cr3"])
    assert "train.stages=4" in runs["cr4_full"] and not any("steps" in o for o in runs["cr4_full"])


def test_paper_comparisons_train_score_and_reuse_the_config_own_run(tmp_path, capsys):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump(toy_config(steps=100)))
    out = tmp_path / "page.md"
    args = [str(cfg), "--runs", str(tmp_path / "runs"), "--sigmas", "0.5", "1.0", "--iterations", "2",
            "--only", "Sampling sigma around the truth", "--out", str(out)]
    assert paper_comparisons.main(args) == 0
    # sigma 0.5 is the toy config's own value, so that run is the plain one
    assert sorted(p.name for p in (tmp_path / "runs" / "toy").iterdir()) == ["sigma1", "sir"]
    trained = load_checkpoint(tmp_path / "runs" / "toy" / "sigma1" / "checkpoint.safetensors")
    assert "sigma: 1.0" in trained.config_yaml
    text = out.read_text()
    assert "## `toy: Sampling sigma around the truth`" in text and "| sigma 1 | sir | mlp |" in text
    assert (tmp_path / "toy_sampling_sigma_around_the_truth.png").stat().st_size > 1000
    before = (tmp_path / "runs" / "toy" / "sir" / "checkpoint.safetensors").stat().st_mtime_ns
    assert paper_comparisons.main(args) == 0  # scored again, not trained again
    assert (tmp_path / "runs" / "toy" / "sir" / "checkpoint.safetensors").stat().st_mtime_ns == before
    with pytest.raises(SystemExit, match="unknown comparison"):
        paper_comparisons.main([str(cfg), "--only", "nope"])


def test_training_minutes_add_up_the_stages_whose_clocks_each_start_at_zero(tmp_path):
    lines = [{"stage": 0, "step": 1, "elapsed_s": 30.0}, {"stage": 0, "step": 2, "elapsed_s": 60.0},
             {"stage": 1, "step": 1, "elapsed_s": 20.0}, {"stage": 1, "step": 2, "elapsed_s": 90.0},
             {"stage": 1, "step": 2, "final": True, "loss": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert compare_runs.training_minutes(str(tmp_path / "checkpoint.safetensors")) == 2.5
    assert compare_runs.training_minutes(str(tmp_path / "nowhere" / "c.safetensors")) is None
