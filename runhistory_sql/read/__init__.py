"""The read side: ``RunStore``, the one door to past runs, and what it is built from (listing,
paged listing, history windows, summaries, records, frames, export, plot, read-only query,
deletion).

Every front end (the CLI, the dashboard, a notebook) calls :class:`~runhistory_sql.read.store.RunStore`'s
methods, which return the types of :mod:`.models`. The library functions behind them take a
``RunStore`` first (a URL goes through one: ``RunStore(url)``), or, inside a method, the
method's ``Connection``.

It imports :mod:`runhistory_sql.db`, and :mod:`runhistory_sql.write` only where it must ask who
holds a run (``deletion``).
"""
