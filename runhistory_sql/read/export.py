"""Writing the effective points of runs to a file: CSV, JSON lines or Parquet, by the extension.

Points are read series by series, in chunks of :data:`CHUNK` points, with the raw driver, and
written as they come, so memory holds one chunk (Parquet: one row group) whatever the size of
the export. Everything is read in one transaction: a run being written meanwhile is exported as
it was when the export began. The file appears only when it is complete (it is written under a
temporary name, then renamed), so a failed export leaves nothing behind and no old file damaged.

Columns, in every format: ``experiment``, ``run_name``, ``run_id``, ``stage``, ``metric``,
``seq``, ``epoch``, ``value``, ``value_json``, ``recorded_at`` and ``step``, as in ``v_metrics``
(``step`` empty / null for a point without one: the Trainer's). ``value``
is the number (NaN, infinities and -0.0 exact), empty for a value that is not a number, whose
JSON text is in ``value_json``. ``recorded_at`` is ISO 8601 UTC text, e.g.
``2026-11-01T10:00:01.000Z`` (Parquet: a ``timestamp[ms, UTC]``). JSON lines are strict JSON:
NaN and the infinities are the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Sequence

from sqlalchemy import Connection

from ..db.effective import effective_points
from ..db.engine import fetch_raw, placeholder
from ..errors import ExportError, MissingExtraError, brief
from .frames import series_query
from ..db.schema import SPECIAL_NAN, SPECIAL_NEG_ZERO, series

if TYPE_CHECKING:
    from .store import RunStore

COLUMNS = ("experiment", "run_name", "run_id", "stage", "metric", "seq", "epoch", "value", "value_json", "recorded_at",
           "step")
#: The file formats, by extension.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
#: Points read (and, for Parquet, buffered) at a time.
CHUNK = 65_536

#: ``progress(done, total)``: called with ``(0, total)`` first, then after every chunk.
Progress = Callable[[int, int], None]
#: A point as read: ``(seq, epoch, value, special, value_json, recorded_at_ms, step)``.
Row = tuple[int, int, Any, Any, Any, int, Any]



@dataclass(frozen=True)
class ExportResult:
    """What was written: the file, the number of points, and of runs."""

    path: Path
    points: int
    runs: int


def export_points(
    store: RunStore, runs: Sequence[str | int], path: str | Path, *,
    metrics: Sequence[str] | None = None, experiment: str | None = None, progress: Progress | None = None,
) -> ExportResult:
    """Write the effective points of ``runs`` to ``path``, in the format its extension names.

    Example::

        with RunStore("sqlite:///runs.db") as store:
            export_points(store, ["baseline", "fast"], "curves.parquet")   # or store.export(...)

    :param runs: run names or ids (a name that is in several experiments needs ``experiment``)
    :param path: the file to write: ``.csv``, ``.jsonl`` / ``.ndjson`` or ``.parquet``
    :param metrics: only these metrics; default: all
    :param experiment: the experiment of the runs
    :param progress: called with ``(points done, points in all)`` as the export proceeds
    :return: the file, and how many points of how many runs it holds
    :raises ExportError: the extension is unknown, or none of the ``metrics`` has points
    :raises RunNotFoundError: a run does not exist
    :raises MissingExtraError: Parquet was asked for and pyarrow is not installed
    """
    path = Path(path)
    writer_class = _writer_for(path)
    if not runs:
        raise ExportError("Name at least one run to export. List them with: runhistory-sql runs")
    with store.engine.connect() as conn, conn.begin():  # one snapshot, even of a live run
        run_ids = list(dict.fromkeys(store.run_id(run, experiment, conn=conn) for run in runs))
        found = conn.execute(series_query(run_ids, metrics, experiment, None).add_columns(series.c.n_points)).all()
        if metrics and not found:
            raise ExportError(
                f"None of the runs has points of {', '.join(map(repr, metrics))}. "
                "See a run's metrics with: runhistory-sql show RUN"
            )
        done = _write(conn, found, path, writer_class, progress or (lambda done, total: None))
    return ExportResult(path, done, len(run_ids))


def _write(conn: Connection, found: Sequence[Any], path: Path, writer_class: type[_Writer], progress: Progress) -> int:
    total, done = sum(row.n_points for row in found), 0
    progress(0, total)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with writer_class(part) as writer:
            for row in found:
                for chunk in _chunks(conn, row.id, row.created_at):
                    writer.write(row, chunk)
                    done += len(chunk)
                    progress(done, total)
        os.replace(part, path)
    except OSError as e:
        raise ExportError(f"Cannot write {path}: {_reason(e, part, path)}.") from e
    except conn.dialect.loaded_dbapi.Error as e:  # the raw driver's own errors (fetch_raw)
        raise ExportError(f"Reading the points for {path} failed: {brief(e)}") from e
    finally:
        part.unlink(missing_ok=True)
    return done


def _reason(error: OSError, part: Path, path: Path) -> str:
    """Why writing failed, in words that name the user's file, not the temporary one beside it
    (pyarrow puts its whole message, with the file name, in ``strerror``)."""
    if error.errno:
        return os.strerror(error.errno)
    return str(error.strerror or error).replace(str(part), str(path))


def _chunks(conn: Connection, series_id: int, created_ms: int) -> Iterator[list[Row]]:
    """The effective points of a series, ``CHUNK`` at a time, as stored (``special`` undecoded)."""
    sql = (
        f"SELECT seq, epoch, value, special, value_json, recorded_at + {int(created_ms)}, step "
        f"{effective_points(conn)} AND seq > {placeholder(conn)} ORDER BY seq LIMIT {CHUNK}"
    )
    last = -1
    while True:
        rows = fetch_raw(conn, sql, (series_id, last))
        if not rows:
            return
        yield rows
        last = rows[-1][0]


# How each writer turns the special flag into a value (a plain number has none).
_SPECIAL = {SPECIAL_NAN: math.nan, SPECIAL_NEG_ZERO: -0.0}
_SPECIAL_CSV = {SPECIAL_NAN: "nan", SPECIAL_NEG_ZERO: "-0.0"}
_SPECIAL_JSON = {SPECIAL_NAN: '"NaN"', SPECIAL_NEG_ZERO: "-0.0"}


def _writer_for(path: Path) -> type[_Writer]:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ExportError(
            f"Cannot export to {path}: its extension {path.suffix or '(none)'!r} is not one of "
            f"{', '.join(FORMATS)}. Name the file e.g. runs.csv, runs.jsonl or runs.parquet."
        )
    if not path.parent.is_dir():
        raise ExportError(f"Cannot export to {path}: the directory {path.parent} does not exist.")
    if kind == "parquet":
        _import_pyarrow()
    return {"csv": _CsvWriter, "jsonl": _JsonLinesWriter, "parquet": _ParquetWriter}[kind]


# -- the formats ---------------------------------------------------------------------------------


class _Writer:
    """Writes chunks of points of series to a file; a context manager that closes it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, series_row: Any, rows: list[Row]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TextWriter(_Writer):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.file: IO[str] = open(path, "w", encoding="utf-8", newline="")
        self.iso = IsoTimes()

    def close(self) -> None:
        self.file.close()


class _CsvWriter(_TextWriter):
    """CSV as the csv module writes it; the lines are built directly (one f-string per point),
    with the series' columns quoted once."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        csv.writer(self.file, lineterminator="\n").writerow(COLUMNS)

    def write(self, s: Any, rows: list[Row]) -> None:
        line = io.StringIO()
        csv.writer(line, lineterminator="").writerow((s.experiment, s.run_name, s.run_id, s.idx, s.metric, ""))
        head, iso = line.getvalue(), self.iso
        self.file.writelines(
            f"{head}{seq},{epoch},{('' if value is None else value) if special is None else _SPECIAL_CSV[special]},"
            f"{'' if text is None else _csv_quoted(text)},{iso(ms)},{'' if step is None else step}\n"
            for seq, epoch, value, special, text, ms, step in rows
        )


def _csv_quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class _JsonLinesWriter(_TextWriter):
    """One JSON object per line; the series' keys are encoded once."""

    def write(self, s: Any, rows: list[Row]) -> None:
        head = json.dumps(
            {"experiment": s.experiment, "run_name": s.run_name, "run_id": s.run_id, "stage": s.idx, "metric": s.metric},
            ensure_ascii=False,
        )[:-1]
        iso, dumps = self.iso, json.dumps
        self.file.writelines(
            f'{head}, "seq": {seq}, "epoch": {epoch}, '
            f'"value": {json_number(value) if special is None else _SPECIAL_JSON[special]}, '
            f'"value_json": {"null" if text is None else dumps(text, ensure_ascii=False)}, "recorded_at": "{iso(ms)}", '
            f'"step": {"null" if step is None else step}}}\n'
            for seq, epoch, value, special, text, ms, step in rows
        )


def json_number(value: float | None) -> str:
    """A float as strict JSON: a number, or ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; ``null``."""
    if value is None:
        return "null"
    if math.isfinite(value):
        return repr(float(value))
    return '"NaN"' if value != value else ('"Infinity"' if value > 0 else '"-Infinity"')


class _ParquetWriter(_Writer):
    """Parquet through pyarrow: columns built per chunk, one row group per ``CHUNK`` or so points."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        pa, pq = _import_pyarrow()
        self.pa = pa
        self.schema = pa.schema([
            ("experiment", pa.string()), ("run_name", pa.string()), ("run_id", pa.int64()), ("stage", pa.int32()),
            ("metric", pa.string()), ("seq", pa.int64()), ("epoch", pa.int32()), ("value", pa.float64()),
            ("value_json", pa.string()), ("recorded_at", pa.timestamp("ms", tz="UTC")), ("step", pa.int64()),
        ])
        self.writer = pq.ParquetWriter(path, self.schema)
        self.batches: list[Any] = []
        self.buffered = 0

    def write(self, s: Any, rows: list[Row]) -> None:
        pa, n, types = self.pa, len(rows), self.schema.types
        head = [pa.repeat(pa.scalar(v, t), n) for v, t in zip((s.experiment, s.run_name, s.run_id, s.idx, s.metric), types)]
        values = [value if special is None else _SPECIAL[special] for _, _, value, special, _, _, _ in rows]
        columns = ([row[0] for row in rows], [row[1] for row in rows], values, [row[4] for row in rows], [row[5] for row in rows],
                   [row[6] for row in rows])
        rest = [pa.array(column, t) for column, t in zip(columns, types[5:])]
        self.batches.append(pa.RecordBatch.from_arrays(head + rest, schema=self.schema))
        self.buffered += n
        if self.buffered >= CHUNK:  # one row group of about CHUNK points, not one per small series
            self._flush()

    def _flush(self) -> None:
        if self.batches:
            self.writer.write_table(self.pa.Table.from_batches(self.batches, self.schema), row_group_size=2 * CHUNK)
        self.batches, self.buffered = [], 0

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self.writer.close()


def _import_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as e:
        raise MissingExtraError(
            'Exporting Parquet needs pyarrow, which is not installed. Install it with: '
            'pip install "runhistory-sql[pandas]"'
        ) from e
    return pyarrow, pyarrow.parquet


class IsoTimes:
    """Milliseconds since the Unix epoch to ISO 8601 UTC text with milliseconds, e.g.
    ``2026-11-01T10:00:01.000Z``; consecutive points within a second share the formatting."""

    def __init__(self) -> None:
        self._second: int | None = None
        self._prefix = ""

    def __call__(self, ms: int) -> str:
        second, milli = divmod(ms, 1000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{milli:03d}Z"
