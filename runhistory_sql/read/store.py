"""``RunStore``: reading past runs back (the views for records, the driver for long histories)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sqlalchemy import Connection, Engine

from ..db.engine import make_engine, mask, report_unreachable, resolve_url
from ..errors import InvalidArgumentError, RunHistorySQLError, RunNotFoundError
from .comparison import compare_runs
from .deletion import count_rows, delete_run
from .export import ExportResult, export_points
from .filters import parse_condition
from .frames import import_pandas, read_frame
from .histories import read_history
from .listing import find_run, list_runs, read_runs
from .models import Comparison, ConfigSnapshot, Event, MetricStat, Param, Point, Run, RunListing, RunReport
from .paging import RunPage, read_names, read_page, read_stages
from .params import param_history
from .query import DEFAULT_LIMIT, DEFAULT_TIMEOUT_S, QueryResult, run_query
from .records import read_configs, read_events
from .summaries import best_runs, summarize
from .windows import HistoryWindow, read_window


class RunStore:
    """Read runs, metric histories and best values from a runhistory-sql database.

    Example::

        store = RunStore("sqlite:///runs.db")
        for run in store.runs(experiment="mnist").runs:
            print(run.run_name, run.status)
        points = store.history("baseline", "eval_loss_epoch")   # [(seq, epoch, value, recorded_at_ms, step)]
        print(store.best("eval_loss_epoch", limit=3))
        for metric in store.summary("baseline"):
            print(metric.metric, metric.best, "at epoch", metric.best_epoch)
        df = store.frame(["baseline", "fast"], "eval_loss_epoch")   # needs the pandas extra

    :param url: database URL; else ``$RUNHISTORY_SQL_URL``; else ``sqlite:///runhistory.db``
    :param read_only: open the database read-only (the default: a SQLite file must exist, and
        nothing can change it); ``False`` only to :meth:`delete` runs
    """

    def __init__(self, url: str | None = None, *, read_only: bool = True) -> None:
        if not read_only:  # a read-only engine checks that a SQLite file exists, and creates none
            make_engine(url, read_only=True).dispose()
        self._engine: Engine = make_engine(url, read_only=read_only)
        self.url = resolve_url(url)  #: the URL as given (a read-only engine's is rewritten)
        self._shown = mask(self.url)
        self.read_only = read_only
        report_unreachable(self._engine, self._shown)

    @property
    def engine(self) -> Engine:
        """The store's engine, for your own SQL against the views (read-only unless the store
        was opened with ``read_only=False``), e.g. ``pandas.read_sql("SELECT ...", store.engine)``."""
        return self._engine

    def close(self) -> None:
        """Close the store's connections."""
        self._engine.dispose()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({self._shown!r})"

    def runs(
        self, experiment: str | None = None, status: str | None = None, *, name_like: str | None = None,
        sort: str | None = None, limit: int | None = None, metrics: Sequence[str] = (), where: Sequence[str] = (),
    ) -> RunListing:
        """Return the runs (by id, or as ``sort`` says) with the last and best of their key metrics.

        Example::

            listing = store.runs(experiment="mnist", sort="eval_loss_epoch", limit=10)
            for run in listing.runs:
                print(run.run_name, run.status, run.metrics["eval_loss_epoch"].best)

        :param name_like: a SQL ``LIKE`` pattern on the run name, e.g. ``"resnet-%"``
        :param sort: ``METRIC[:min|max]``: by the metric's best value (runs without it last, ties by
            id); the default goal comes from the name (:func:`~runhistory_sql.read.summaries.goal_of`)
        :param limit: keep this many runs, after sorting
        :param metrics: the metrics in :attr:`RunListing.metrics`; default: up to 3 ending in ``_epoch``
        :param where: conditions on params and tags, all to be met, e.g. ``["lr<1e-4", "tag.team=nlp"]``
            (:mod:`~runhistory_sql.read.filters`)
        :return: :attr:`RunListing.runs` (every :class:`Run` with all its metrics) and
            :attr:`RunListing.metrics` (the key metrics and their goals)
        :raises InvalidArgumentError: a bad ``sort`` or condition, or a metric asked for that none of the runs has
        """
        conditions = [parse_condition(text) for text in ([where] if isinstance(where, str) else where)]
        with self._engine.connect() as conn:
            return list_runs(
                conn, experiment=experiment, status=status, name_like=name_like, sort=sort, limit=limit, metrics=metrics,
                where=conditions,
            )

    def runs_page(self, **filters: Any) -> RunPage:
        """One page of the runs, filtered, sorted and paged in SQL (the dashboard's runs list), e.g.
        ``store.runs_page(status="running", sort="best.eval_loss_epoch", order="asc", limit=20)``.

        :param filters: the keywords of :func:`~runhistory_sql.read.paging.read_page`
        :raises InvalidArgumentError: a bad sort, order, status, condition, offset or limit
        """
        with self._engine.connect() as conn:
            return read_page(conn, **filters)

    def names(self) -> dict[str, list[str]]:
        """The ``experiments``, ``metrics``, ``param_keys`` and ``tag_keys`` there are, sorted."""
        with self._engine.connect() as conn:
            return read_names(conn)

    def stages(self, run: str | int, *, experiment: str | None = None) -> list[tuple[int, int]]:
        """The run's stages as ``(stage, started_at_ms)``, in order."""
        with self._engine.connect() as conn:
            return read_stages(conn, self.run_id(run, experiment, conn=conn))

    def window(self, run: str | int, metric: str, *, experiment: str | None = None, **options: Any) -> HistoryWindow:
        """A metric's history across all stages as a chart draws it, downsampled in SQL, e.g.
        ``store.window("baseline", "loss", buckets=500)``, then ``after=`` its ``cursor`` for
        only the new points.

        :param options: the keywords of :func:`~runhistory_sql.read.windows.read_window`
        :raises RunNotFoundError: no such run
        """
        with self._engine.connect() as conn:
            return read_window(conn, self.run_id(run, experiment, conn=conn), metric, **options)

    def run(self, name_or_id: str | int, experiment: str | None = None) -> Run:
        """Return one run by name (unique within an experiment) or id.

        :raises RunNotFoundError: no such run, or the name is in several experiments
        """
        with self._engine.connect() as conn:
            return self._run(conn, self.run_id(name_or_id, experiment, conn=conn))

    def report(self, run: str | int, *, experiment: str | None = None, goals: Mapping[str, str] | None = None) -> RunReport:
        """Return everything about one run: the run, its config snapshots, its events and the
        stats of its metrics (with ``best_epoch``), read on one connection, the run found once.

        Example::

            report = store.report("baseline")
            print(report.run.status, [m.best for m in report.metrics])

        :param goals: as in :meth:`summary`
        :raises RunNotFoundError: no such run
        """
        with self._engine.connect() as conn:
            run_id = self.run_id(run, experiment, conn=conn)
            return RunReport(
                self._run(conn, run_id), read_configs(conn, run_id), read_events(conn, run_id), summarize(conn, run_id, goals),
                param_history(conn, run_id),
            )

    def compare(
        self, runs: Sequence[str | int], metrics: Sequence[str] | None = None, *, experiment: str | None = None,
    ) -> Comparison:
        """Compare runs side by side: the config fields that differ between the latest ``train``
        snapshot of each, and the stats of the metrics (with ``best_epoch``).

        Example::

            comparison = store.compare(["baseline", "fast"], ["eval_loss_epoch"])
            for stat in comparison.metrics["eval_loss_epoch"]:
                print(stat.best, stat.best_epoch)

        :param runs: two or more runs (names or ids)
        :param metrics: the metrics to compare; default: up to 3 that end in ``_epoch``
        :raises InvalidArgumentError: fewer than 2 runs, a run given twice, or a metric none of them has
        :raises RunNotFoundError: a run does not exist
        """
        if isinstance(runs, (str, int)) or len(runs) < 2:
            raise InvalidArgumentError(f"Compare needs a list of at least 2 runs, not {runs!r}.")
        with self._engine.connect() as conn:
            ids = [self.run_id(run, experiment, conn=conn) for run in runs]
            found = [self._run(conn, run_id) for run_id in ids]
            twice = next((r for r in found if ids.count(r.run_id) > 1), None)
            if twice is not None:
                raise InvalidArgumentError(f"Run {twice.run_name!r} (id {twice.run_id}) is given twice; compare different runs.")
            return compare_runs(conn, found, metrics)

    def _run(self, conn: Connection, run_id: int) -> Run:
        found = read_runs(conn, ":run_id", {"run_id": run_id})
        if not found:
            raise RunNotFoundError(f"There is no run with id {run_id}. List them with: runhistory-sql runs")
        return found[0]

    def run_id(self, name_or_id: str | int, experiment: str | None = None, *, conn: Connection | None = None) -> int:
        """Return the id of the run named (or numbered) so: the one rule for finding a run.

        :param conn: a connection of this store's engine to look on (default: a new one)
        :raises RunNotFoundError: no such run, or the name is in several experiments
        """
        if conn is None:
            with self._engine.connect() as own:
                return self.run_id(name_or_id, experiment, conn=own)
        return find_run(conn, name_or_id, experiment)

    def history(self, run: str | int, metric: str, stage: int | None = None, *, experiment: str | None = None) -> list[Point]:
        """Return a metric's effective points in order: ``(seq, epoch, value, recorded_at_ms,
        step)`` (:data:`~runhistory_sql.read.models.Point`), ``step`` ``None`` for the Trainer's points.

        Plain tuples and a raw time, for speed (a long history is read without a Python object per
        point): ``recorded_at_ms`` is milliseconds since the Unix epoch, UTC; make a ``datetime``
        of one with :func:`~runhistory_sql.read.records.utc`. Every other read gives UTC ``datetime``.

        :param stage: the stage (1 = the first ``train()``); default: the latest stage that has it
        :return: the points (none when the run has no such metric, or not in ``stage``)
        :raises RunNotFoundError: no such run
        """
        with self._engine.connect() as conn:
            return read_history(conn, self.run_id(run, experiment, conn=conn), metric, stage)

    def params(self, run: str | int, *, experiment: str | None = None) -> dict[str, Any]:
        """The run's current params, key -> value (``SQLRunHistory.log_params``, ``SQLTracker``'s
        config), in the order first logged.

        :raises RunNotFoundError: no such run
        """
        return self.run(run, experiment).params

    def param_history(self, run: str | int, *, experiment: str | None = None) -> list[Param]:
        """Every logged value of the run's params (a changed value keeps the old one): by key,
        then in time order, each :class:`Param` saying whether it is ``current``.

        :raises RunNotFoundError: no such run
        """
        with self._engine.connect() as conn:
            return param_history(conn, self.run_id(run, experiment, conn=conn))

    def best(
        self, metric: str, *, mode: str = "min", limit: int = 10, experiment: str | None = None,
    ) -> list[tuple[str, str, float]]:
        """Return the runs with the best value of ``metric``: ``(experiment, run_name, value)``.

        Reads the per-series summaries the writer keeps, not the points, so it stays fast across
        thousands of runs.

        :param mode: ``"min"`` (losses) or ``"max"`` (accuracies)
        """
        with self._engine.connect() as conn:
            return best_runs(conn, metric, mode=mode, limit=limit, experiment=experiment)

    def summary(
        self, run: str | int, *, experiment: str | None = None, goals: Mapping[str, str] | None = None,
    ) -> list[MetricStat]:
        """Summarise each metric of the run, in the latest stage that has it, ordered by name:
        :class:`MetricStat` with ``best_epoch`` (the epoch of the first point with the best value).

        :param goals: metric name -> ``"min"`` or ``"max"``, where the name misleads ``goal_of``
        :raises RunNotFoundError: no such run
        """
        run_id = self.run_id(run, experiment)
        with self._engine.connect() as conn:
            return summarize(conn, run_id, goals)

    def configs(self, run: str | int, *, experiment: str | None = None) -> list[ConfigSnapshot]:
        """The run's ``TrainerRunConfig`` snapshots, in the order they were taken.

        Example::

            for snapshot in store.configs("baseline"):
                print(snapshot.stage, snapshot.kind, snapshot.fields["num_epochs"])

        :raises RunNotFoundError: no such run
        """
        run_id = self.run_id(run, experiment)
        with self._engine.connect() as conn:
            return read_configs(conn, run_id)

    def events(self, run: str | int, kind: str | None = None, *, experiment: str | None = None) -> list[Event]:
        """The run's events in the order they happened.

        Example::

            for event in store.events("finetune", kind="unfreeze"):
                print(event.epoch, event.recorded_at, event.payload["groups_unfrozen"])

        :param kind: only events of this kind, e.g. ``"freeze"``
        :raises RunNotFoundError: no such run
        """
        run_id = self.run_id(run, experiment)
        with self._engine.connect() as conn:
            return read_events(conn, run_id, kind)

    def frame(
        self, runs: str | int | Sequence[str | int] | None = None, metrics: str | Sequence[str] | None = None, *,
        experiment: str | None = None, stage: int | None = None, value_json: bool = False,
    ) -> Any:
        """A pandas DataFrame of effective points across runs, columns ``experiment``,
        ``run_name``, ``run_id``, ``stage``, ``metric``, ``seq``, ``epoch``, ``value`` (float:
        NaN, infinities and -0.0 exact; NaN too for values that are not numbers) and
        ``recorded_at`` (``datetime64[ms, UTC]``), ordered by run id, stage, metric and seq.
        ``experiment``, ``run_name`` and ``metric`` are categorical (cheap for millions of
        points; categories in order of appearance). Needs the ``pandas`` extra.

        Example::

            df = store.frame(["baseline", "fast"], "eval_loss_epoch")
            df.pivot_table(index="epoch", columns="run_name", values="value")

        :param runs: a run (name or id) or a list of them; default: every run (of ``experiment``)
        :param metrics: a metric name or a list of them; default: every metric
        :param experiment: only runs of this experiment (also chooses among same-named runs)
        :param stage: only this stage (1 = the first ``train()``); default: every stage
        :param value_json: add a column ``value_json``: the JSON text of values that are not
            numbers, missing (``pd.isna``) for numbers
        :raises MissingExtraError: pandas is not installed
        :raises RunNotFoundError: a run in ``runs`` does not exist
        """
        import_pandas()  # before any query: a missing extra is the first thing to fix
        run_ids = None
        if runs is not None:
            chosen = [runs] if isinstance(runs, (str, int)) else runs
            run_ids = [self.run_id(name_or_id, experiment) for name_or_id in chosen]
        names = [metrics] if isinstance(metrics, str) else metrics
        with self._engine.connect() as conn:
            return read_frame(conn, run_ids, names, experiment=experiment, stage=stage, value_json=value_json)

    def query(self, sql: str, *, timeout: float = DEFAULT_TIMEOUT_S, limit: int = DEFAULT_LIMIT) -> QueryResult:
        """Run one reading statement of yours on a read-only connection: see
        :func:`~runhistory_sql.read.query.run_query` (the limits, and on PostgreSQL the reader role).

        :return: ``columns``, ``rows`` (tuples as the driver gives them) and ``truncated``
        """
        return run_query(self, sql, timeout=timeout, limit=limit)

    def export(
        self, runs: Sequence[str | int], path: str | Path, *, metrics: Sequence[str] | None = None,
        experiment: str | None = None, progress: Callable[[int, int], None] | None = None,
    ) -> ExportResult:
        """Write the runs' effective points to a ``.csv``, ``.jsonl`` or ``.parquet`` file: see
        :func:`~runhistory_sql.read.export.export_points`."""
        return export_points(self, runs, path, metrics=metrics, experiment=experiment, progress=progress)

    def plot(self, runs: Sequence[str | int], metrics: Sequence[str], output: str | Path = "curves.png", **options: Any) -> Path:
        """Draw the runs' curves to a PNG, SVG or PDF file (the ``plot`` extra): see
        :func:`~runhistory_sql.read.plot.plot_runs` for the ``options`` (``x``, ``stage``,
        ``experiment``, ``title``, ``size``, ``dpi``).

        :return: the path written
        """
        from .plot import plot_runs  # matplotlib is imported only when drawing

        return plot_runs(self, runs, metrics, output, **options)

    def rows_of(self, run: str | int, *, experiment: str | None = None) -> dict[str, int]:
        """Return how many rows :meth:`delete` would remove per table (``points``, superseded
        ones too, ``series``, ``configs``, ``events``, ``stages``, ``runs``), e.g. to ask first.

        :raises RunNotFoundError: no such run
        """
        with self._engine.connect() as conn:
            return count_rows(conn, self.run_id(run, experiment, conn=conn))

    def delete(self, run: str | int, *, experiment: str | None = None) -> dict[str, int]:
        """Delete a run and everything recorded for it, in one transaction; the only method that
        removes data. The experiment and every other run stay.

        Example::

            with RunStore("sqlite:///runs.db", read_only=False) as store:
                store.delete("baseline", experiment="mnist")   # {"points": 6, ..., "runs": 1}

        :return: the number of rows removed per table: ``points``, ``series``, ``configs``,
            ``events``, ``stages`` and ``runs``
        :raises RunHistorySQLError: the store is read-only (the default)
        :raises RunInUseError: a live process still holds the run
        :raises RunNotFoundError: no such run
        """
        if self.read_only:
            raise RunHistorySQLError(
                f"{self!r} is read-only, so it cannot delete run {run!r}. Open it with "
                "RunStore(url, read_only=False) to delete runs."
            )
        return delete_run(self._engine, self.run_id(run, experiment))
