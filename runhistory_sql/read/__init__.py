"""The read side: ``RunStore`` and what it is built from (summaries, records, frames, export,
plot, read-only query, deletion).

It imports :mod:`runhistory_sql.db`, and :mod:`runhistory_sql.write` only where it must ask who
holds a run (``deletion``).
"""
