"""The training-side write path: ``SQLRunHistory``, claiming a run, the background writer, batches,
spill and set-aside files, and how a process's runs end.

It imports only :mod:`runhistory_sql.db`.
"""
