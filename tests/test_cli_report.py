"""``runhistory-sql report``: one self-contained HTML file (the browser side is in test_ui_pages.py)."""
from __future__ import annotations

import json
import re


def embedded(path):
    text = path.read_text()
    found = re.search(r'<script type="application/json" id="runhistory-embed">(.*?)</script>', text, re.S)
    return text, json.loads(found.group(1))


def test_can_write_the_run_page_of_one_run(run, trained_url, tmp_path):
    out = tmp_path / "finetune.html"

    result = run("report", "--url", trained_url, "finetune", "-o", str(out))

    text, data = embedded(out)
    assert result.output == f"Wrote {out}\n"
    assert (data["page"], data["run_id"]) == ("run", 3)
    assert sorted(data["responses"])[:2] == [
        "/api/runs/3", "/api/runs/3/history?metric=eval_loss_epoch&x=epoch&superseded=1"]
    assert [p for s in data["responses"]["/api/runs/3/history?metric=eval_loss_epoch&x=epoch&superseded=1"]["series"] for p in s["x"]] == [1, 2, 3, 4, 5]
    assert "<script src=" not in text and "<link" not in text  # nothing fetched


def test_can_write_the_compare_page_of_several_runs(run, trained_url, tmp_path):
    out = tmp_path / "sweep.html"

    run("report", "--url", trained_url, "baseline", "fast", "id:3", "-o", str(out))

    _, data = embedded(out)
    assert (data["page"], data["runs"]) == ("compare", [1, 2, 3])
    assert "/api/compare?runs=1%2C2%2C3" in data["responses"]


def test_an_unknown_run_is_a_one_line_error(run, trained_url, tmp_path):
    result = run("report", "--url", trained_url, "nope", "-o", str(tmp_path / "x.html"))

    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert not (tmp_path / "x.html").exists()
