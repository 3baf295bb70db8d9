"""``runhistory-sql plot`` and ``runhistory_sql.read.plot``: pictures of the trained runs, checked pixel
by pixel (PNG) and element by element (SVG).

Colours are exact in a PNG where a line is drawn: a curve is solid in its run's colour along its
middle, and Agg snaps a vertical line to whole pixels, so an event line is one column of its colour.
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from runhistory_sql.read.plot import (
    EVENT_STYLES, RUN_COLOURS, Curve, default_title, epoch_positions, panels, seq_position,
)

SVG = "{http://www.w3.org/2000/svg}"


def pixels(path, colour):
    """How many pixels of each column of the PNG are exactly ``colour`` (``"#rrggbb"``)."""
    rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    image = np.asarray(Image.open(path).convert("RGB"))
    return np.all(image == rgb, axis=2).sum(axis=0)


def svg_texts(path):
    root = ET.parse(path).getroot()
    return root, [t.text for t in root.iter(SVG + "text")]


def test_can_plot_runs_to_a_png_with_every_curve_drawn(run, trained_any, tmp_path):
    out = tmp_path / "curves.png"

    result = run("plot", "baseline", "fast", "--metric", "eval_loss_epoch", "-o", str(out), "--url", trained_any)

    assert result.output == f"Wrote {out} (2 runs, 1 metric)\n"
    assert Image.open(out).format == "PNG"
    assert Image.open(out).size == (1000, 600)
    assert pixels(out, RUN_COLOURS[0]).sum() > 500  # baseline
    assert pixels(out, RUN_COLOURS[1]).sum() > 500  # fast
    assert pixels(out, RUN_COLOURS[2]).sum() == 0  # no third run


def test_events_are_vertical_lines_in_the_colour_of_their_kind(run, trained_url, tmp_path):
    out = tmp_path / "curves.png"

    run("plot", "finetune", "resumed", "baseline", "-m", "eval_loss_epoch", "-m", "train_loss_epoch", "-o", str(out), "--url", trained_url)

    columns = {kind: pixels(out, colour) for kind, (colour, _) in EVENT_STYLES.items()}
    assert all(c.max() > 80 for c in columns.values())
    freeze, unfreeze, resumed = (int(columns[k].argmax()) for k in ("freeze", "unfreeze", "resumed"))
    assert freeze < unfreeze < resumed  # epoch 0, then two events at epoch 2 drawn side by side
    assert resumed - unfreeze < 20


def test_a_plot_of_runs_without_events_has_no_event_lines(run, trained_url, tmp_path):
    out = tmp_path / "curves.png"

    run("plot", "baseline", "fast", "-m", "eval_loss_epoch", "-o", str(out), "--url", trained_url)

    assert all(pixels(out, colour).max() < 5 for colour, _ in EVENT_STYLES.values())


def test_can_write_an_svg_with_title_axes_and_legend(run, trained_any, tmp_path):
    out = tmp_path / "curves.svg"

    result = run("plot", "finetune", "resumed", "-m", "eval_loss_epoch", "-m", "train_loss_epoch", "-o", str(out), "--url", trained_any)

    root, texts = svg_texts(out)
    assert result.output == f"Wrote {out} (2 runs, 2 metrics)\n"
    assert root.tag == SVG + "svg"
    assert len(root.findall(f".//{SVG}path")) > 20
    assert texts[-8:] == [
        "eval_loss_epoch and train_loss_epoch",
        "finetune: eval_loss_epoch", "finetune: train_loss_epoch", "resumed: eval_loss_epoch", "resumed: train_loss_epoch",
        "freeze (finetune)", "unfreeze (finetune)", "resumed (resumed)",
    ]
    assert {"epoch", "value"} <= set(texts)


def test_can_write_a_pdf(run, trained_any, tmp_path):
    out = tmp_path / "curves.pdf"

    run("plot", "fast", "-m", "train_loss_epoch", "-o", str(out), "--url", trained_any)

    assert out.read_bytes().startswith(b"%PDF-")
    assert out.read_bytes().rstrip().endswith(b"%%EOF")


def test_can_plot_a_stage_against_seq_with_a_title(run, trained_url, tmp_path):
    out = tmp_path / "eval.svg"

    run("plot", "baseline", "-m", "evaluation_loss", "--stage", "2", "--x", "seq", "--title", "Evaluation", "-o", str(out), "--url", trained_url)

    _, texts = svg_texts(out)
    assert "Evaluation" in texts
    assert {"seq (point number)", "evaluation_loss", "baseline"} <= set(texts)


def test_the_default_output_is_curves_png(run, trained_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    result = run("plot", "solo", "-m", "eval_loss_epoch", "--url", trained_url)

    assert result.output == "Wrote curves.png (1 run, 1 metric)\n"
    assert Image.open(tmp_path / "curves.png").size == (1000, 600)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fast", "-m", "accuracy"], "Error: Run 'fast' has no metric 'accuracy'. It has: eval_loss_epoch, train_loss_epoch.\n"),
        (
            ["baseline", "-m", "evaluation_loss", "--stage", "1"],
            "Error: Run 'baseline' has no metric 'evaluation_loss' in stage 1. "
            "It has: eval_loss_epoch (stage 1), evaluation_loss (stage 2), train_loss_epoch (stage 1).\n",
        ),
        (["nobody", "-m", "eval_loss_epoch"], "Error: There is no run named 'nobody'. List them with: runhistory-sql runs\n"),
        (["fast", "-m", "eval_loss_epoch", "-o", "curves.jpg"], "Error: Cannot write curves.jpg: the output must end in .png, .svg or .pdf.\n"),
        (["fast", "-m", "eval_loss_epoch", "-o", "no/dir/c.png"], "Error: Cannot write no/dir/c.png: the directory no/dir does not exist.\n"),
    ],
)
def test_bad_requests_are_one_line_errors(run, trained_url, tmp_path, monkeypatch, args, message):
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path / "out")

    result = run("plot", *args, "--url", trained_url)

    assert result.exit_code == 1
    assert result.output == message
    assert list((tmp_path / "out").iterdir()) == []


def test_without_matplotlib_the_error_names_the_extra(run, trained_url, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` sees when it is not installed

    result = run("plot", "fast", "-m", "eval_loss_epoch", "-o", str(tmp_path / "c.png"), "--url", trained_url)

    assert result.output == 'Error: Plotting needs matplotlib: pip install "runhistory-sql[plot]"\n'
    assert not (tmp_path / "c.png").exists()


def test_points_of_one_epoch_are_spread_over_it():
    assert epoch_positions([1, 2, 3]) == [1.0, 2.0, 3.0]
    assert epoch_positions([1, 1, 1, 1, 2, 2]) == [0.25, 0.5, 0.75, 1.0, 1.5, 2.0]


def test_an_event_on_the_seq_axis_sits_after_the_points_of_earlier_epochs():
    seqs, epochs = [0, 1, 2, 3], [1, 1, 2, 2]

    assert [seq_position(seqs, epochs, e) for e in (1, 2, 3)] == [-0.5, 1.5, 3.5]


def test_metrics_of_different_scale_get_a_panel_each():
    loss = Curve("a", "loss", "#000000", [1.0, 2.0], [2.5, 0.9])
    accuracy = Curve("a", "accuracy", "#000000", [1.0, 2.0], [0.5, 0.8])
    lr = Curve("a", "lr", "#000000", [1.0, 2.0], [1e-3, float("nan")])

    assert panels([loss, accuracy], ["loss", "accuracy"]) == [["loss", "accuracy"]]
    assert panels([loss, accuracy, lr], ["loss", "accuracy", "lr"]) == [["loss"], ["accuracy"], ["lr"]]


def test_the_default_title_names_the_metrics():
    assert default_title(["loss"]) == "loss"
    assert default_title(["a", "b", "c"], stage=2) == "a, b and c (stage 2)"
