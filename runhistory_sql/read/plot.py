"""Metric curves of runs as a picture (matplotlib): the library side of ``runhistory-sql plot``.

Where things are drawn:

- ``x="epoch"``: a point recorded at the end of epoch ``e`` sits at ``x = e``; the points of a
  per-step metric (several in one epoch) are spread evenly over ``(e - 1, e]``, so the last one
  lines up with the epoch-level metrics. An event recorded while the run was at epoch ``e`` is a
  vertical line at ``x = e - 1``, the start of epoch ``e``: freezes, unfreezes and resumes happen
  between epochs, before the epoch they change (a resume at epoch 3 re-runs epoch 3).
- ``x="seq"``: point number ``seq`` at ``x = seq``; an event of epoch ``e`` halfway between the
  last point of an earlier epoch and the next point.
- ``x="step"``: the points that have a step (``log_metrics``, ``SQLTracker``) at ``x = step``; the
  Trainer's points have none and are left out. An event sits half a step before the first
  point recorded after it (none after it: not drawn).

Events are those of the stage each curve comes from. Metrics whose magnitudes differ by more than
:data:`SCALE_RATIO` (a loss and a learning rate) get one panel each, sharing the x axis; otherwise
they share one axis, told apart by line style.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import MissingExtraError, PlotError
from .models import Run

if TYPE_CHECKING:
    from .store import RunStore
    from matplotlib.figure import Figure

FORMATS = (".png", ".svg", ".pdf")
X_AXES = ("epoch", "seq", "step")
#: one colour per run, in order: matplotlib's tab10 without its grey (greys mark events)
RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
#: line style and marker of the 1st, 2nd, ... metric sharing an axis
METRIC_STYLES = (("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"))
#: the events drawn as vertical lines: kind -> (colour, line style)
EVENT_STYLES = {"freeze": ("#3b3b3b", "--"), "unfreeze": ("#7a7a7a", "-."), "resumed": ("#1a1a1a", ":")}
#: metrics whose largest values differ by more than this factor are drawn in separate panels
SCALE_RATIO = 10.0
#: events at one place are drawn this fraction of the x range apart, so that none hides another
NUDGE = 0.012
MARKERS_UP_TO = 40  # points per curve: beyond that, markers only hide the line



@dataclass
class Curve:
    """One line to draw: a metric of a run (from one stage) as x and y values."""

    run: str
    metric: str
    colour: str
    xs: list[float]
    ys: list[float]


@dataclass(frozen=True)
class Mark:
    """A vertical line: an event of ``kind`` in ``run`` at ``x``, beside the curve of ``metric``."""

    kind: str
    run: str
    metric: str
    x: float


def plot_runs(
    store: RunStore, runs: Sequence[str | int], metrics: Sequence[str], output: str | Path = "curves.png", *,
    x: str = "epoch", stage: int | None = None, experiment: str | None = None, title: str | None = None,
    size: tuple[float, float] = (10.0, 6.0), dpi: int = 100,
) -> Path:
    """Draw each metric of each run against the epoch (or seq) and save the figure.

    Example::

        with RunStore("sqlite:///runs.db") as store:
            plot_runs(store, ["baseline", "finetune"], ["eval_loss_epoch"], "curves.png")   # or store.plot(...)

    :param runs: run names (or ids), one colour each
    :param metrics: metric names; every run must have each of them
    :param output: a file ending in ``.png``, ``.svg`` or ``.pdf``; its directory must exist
    :param x: ``"epoch"``, ``"seq"`` (the point number) or ``"step"``, see the module docstring
    :param stage: the stage to plot; default: per metric, the latest stage of the run that has it
    :param experiment: the experiment of the runs, where a name is in several
    :param title: default: the metric names
    :param size: width and height in inches; the picture is ``size * dpi`` pixels
    :return: the path written
    :raises PlotError: bad output name, axis or metric, or matplotlib is not installed
    :raises RunNotFoundError: no such run
    """
    path = check_output(output)
    matplotlib = _require_matplotlib()
    if x not in X_AXES:
        raise PlotError(f"x must be one of {', '.join(X_AXES)}, not {x!r}.")
    if not runs or not metrics:
        raise PlotError("Name at least one run and one metric to plot.")
    records = list({r.run_id: r for r in (store.run(name, experiment) for name in runs)}.values())
    several = len({r.experiment for r in records}) > 1
    curves: list[Curve] = []
    marks: list[Mark] = []
    for i, record in enumerate(records):
        label = f"{record.experiment}/{record.run_name}" if several else record.run_name
        found = _load_run(store, record, label, RUN_COLOURS[i % len(RUN_COLOURS)], metrics, x, stage)
        curves += found[0]
        marks += found[1]
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text in SVG: searchable, smaller
        figure = draw(curves, marks, panels(curves, metrics), title or default_title(metrics, stage), x, size, dpi)
        figure.savefig(path, dpi=dpi)
    return path


def check_output(output: str | Path) -> Path:
    """``output`` as a path, if it names a picture type and a directory that exist."""
    path = Path(output)
    if path.suffix.lower() not in FORMATS:
        raise PlotError(f"Cannot write {path}: the output must end in {', '.join(FORMATS[:-1])} or {FORMATS[-1]}.")
    if not path.parent.is_dir():
        raise PlotError(f"Cannot write {path}: the directory {path.parent} does not exist.")
    return path


def _load_run(
    store: RunStore, record: Run, label: str, colour: str, metrics: Sequence[str], x: str, stage: int | None,
) -> tuple[list[Curve], list[Mark]]:
    """The curves of one run and the marks of its events."""
    run_id = record.run_id
    latest = {name: stat.stage for name, stat in record.metrics.items()}
    # (stage, epoch, kind) of the events to mark; the epoch is known
    events = [(e.stage, e.epoch, e.kind, int(e.recorded_at.timestamp() * 1000))
              for e in store.events(run_id) if e.kind in EVENT_STYLES and e.epoch is not None]
    curves, marks = [], []
    for metric in metrics:
        series_stage = stage if stage is not None else latest.get(metric)
        points = store.history(run_id, metric, series_stage) if series_stage is not None else []
        if not points:
            raise PlotError(_no_metric(label, metric, stage, latest))
        if x == "step":
            points = [p for p in points if p[4] is not None]
            if not points:
                raise PlotError(f"Metric {metric!r} of run {label!r} has no points with a step (the Trainer's have "
                                "none): draw it with --x epoch or --x seq.")
        ys = [_number(p[2]) for p in points]
        if all(math.isnan(y) for y in ys):
            raise PlotError(f"Metric {metric!r} of run {label!r} has no finite numbers to plot.")
        seqs, epochs = [p[0] for p in points], [p[1] for p in points]
        xs = epoch_positions(epochs) if x == "epoch" else [float(p[0] if x == "seq" else p[4] or 0) for p in points]
        curves.append(Curve(label, metric, colour, xs, ys))
        for _, epoch, kind, at_ms in (e for e in events if e[0] == series_stage):
            at = (epoch - 1.0 if x == "epoch" else seq_position(seqs, epochs, epoch) if x == "seq"
                  else step_position(points, at_ms))
            if at is not None:
                marks.append(Mark(kind, label, metric, at))
    return curves, marks


def step_position(points: Sequence[Any], at_ms: int) -> float | None:
    """The x on the step axis of an event at ``at_ms``: half a step before the first point
    recorded at or after it; ``None`` when no point was."""
    return next(((p[4] or 0) - 0.5 for p in points if p[3] >= at_ms), None)


def _no_metric(label: str, metric: str, stage: int | None, latest: dict[str, int]) -> str:
    where = f" in stage {stage}" if stage is not None else ""
    if not latest:
        return f"Run {label!r} has no metric {metric!r}{where}: it has no metrics at all."
    has = ", ".join(f"{name} (stage {s})" if stage is not None else name for name, s in sorted(latest.items()))
    return f"Run {label!r} has no metric {metric!r}{where}. It has: {has}."


def _number(value: Any) -> float:
    """A value as a float to draw; NaN (a gap in the line) for infinities and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def epoch_positions(epochs: Sequence[int]) -> list[float]:
    """The x of each point on the epoch axis: the only or last point of epoch ``e`` at ``e``,
    several points of one epoch spread evenly over ``(e - 1, e]``."""
    per_epoch = Counter(epochs)
    seen: Counter[int] = Counter()
    xs = []
    for epoch in epochs:
        seen[epoch] += 1
        xs.append(epoch - 1 + seen[epoch] / per_epoch[epoch])
    return xs


def seq_position(seqs: Sequence[int], epochs: Sequence[int], epoch: int) -> float:
    """The x on the seq axis of an event of ``epoch``: just after the points of earlier epochs."""
    before = [seq for seq, e in zip(seqs, epochs) if e < epoch]
    return max(before) + 0.5 if before else -0.5


def panels(curves: Sequence[Curve], metrics: Sequence[str]) -> list[list[str]]:
    """The metrics of each panel: all in one, unless their magnitudes (largest finite ``|value|``)
    differ by more than :data:`SCALE_RATIO`; then one panel per metric, in the order given."""
    order = list(dict.fromkeys(metrics))
    size = {m: max((abs(y) for c in curves if c.metric == m for y in c.ys if not math.isnan(y)), default=0.0) for m in order}
    positive = [s for s in size.values() if s > 0]
    if positive and max(positive) > SCALE_RATIO * min(positive):
        return [[m] for m in order]
    return [order]


def default_title(metrics: Sequence[str], stage: int | None = None) -> str:
    """E.g. ``"eval_loss_epoch and train_loss_epoch"``, ``"a, b and c (stage 2)"``."""
    names = list(dict.fromkeys(metrics))
    title = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return title + (f" (stage {stage})" if stage is not None else "")


def draw(
    curves: Sequence[Curve], marks: Sequence[Mark], groups: Sequence[Sequence[str]], title: str, x: str,
    size: tuple[float, float], dpi: int,
) -> Figure:
    """The figure: a panel per group of metrics, one legend for runs, metrics and event kinds.

    A bare ``Figure`` (not pyplot) draws with Agg and never opens a window or a GUI toolkit.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=size, dpi=dpi, layout="constrained")
    axes = figure.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
    handles: dict[str, Any] = {}
    kind_labels = {
        kind: f"{kind} ({', '.join(dict.fromkeys(m.run for m in marks if m.kind == kind))})" for kind in EVENT_STYLES
    }
    spots = [at for c in curves for at in c.xs] + [m.x for m in marks]
    nudge = NUDGE * (max(spots) - min(spots) or 1.0)
    for ax, group in zip(axes, groups):
        for curve in (c for c in curves if c.metric in group):
            style, marker = METRIC_STYLES[list(group).index(curve.metric) % len(METRIC_STYLES)]
            label = curve.run if len(group) == 1 else f"{curve.run}: {curve.metric}"
            (line,) = ax.plot(
                curve.xs, curve.ys, color=curve.colour, linestyle=style, linewidth=2, zorder=3,
                marker=marker if len(curve.xs) <= MARKERS_UP_TO else None, markersize=5,
            )
            handles.setdefault(label, line)
        _draw_marks(ax, [m for m in marks if m.metric in group], kind_labels, handles, nudge)
        ax.set_ylabel(group[0] if len(group) == 1 else "value")
        ax.grid(True, color="#e6e6e6", linewidth=0.8)
        ax.set_axisbelow(True)
    axes[-1].set_xlabel({"epoch": "epoch", "seq": "seq (point number)", "step": "step"}[x])
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title)
    figure.legend(handles=list(handles.values()), labels=list(handles), loc="outside right upper", frameon=False)
    return figure


def _draw_marks(ax: Any, marks: Sequence[Mark], kind_labels: dict[str, str], handles: dict[str, Any], nudge: float) -> None:
    """The events as vertical lines behind the curves, one per run and place; lines that would
    hide each other (two runs, one epoch) are moved apart by ``nudge``. One legend entry per
    kind, naming the runs it happened in (``kind_labels``, e.g. ``unfreeze (finetune)``)."""
    places = list(dict.fromkeys((m.x, m.kind, m.run) for m in marks))
    at_x = Counter(x for x, _, _ in places)
    seen: Counter[float] = Counter()
    for x, kind, _ in places:
        offset = (seen[x] - (at_x[x] - 1) / 2) * nudge
        seen[x] += 1
        colour, style = EVENT_STYLES[kind]
        line = ax.axvline(x + offset, color=colour, linestyle=style, linewidth=1.8, zorder=2)
        handles.setdefault(kind_labels[kind], line)


def _require_matplotlib() -> Any:
    """The ``matplotlib`` module, or a clear error naming the extra to install."""
    try:
        import matplotlib
    except ImportError as e:
        raise MissingExtraError('Plotting needs matplotlib: pip install "runhistory-sql[plot]"') from e
    return matplotlib
