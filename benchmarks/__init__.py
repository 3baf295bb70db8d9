"""Benchmarks of runhistory-sql against the goals of issue 5, each measured beside its comparison.

Run them with ``python -m benchmarks`` (see ``benchmarks/README.md``). One module per group of
measurements; each exposes ``ROWS`` (its row keys and labels) and ``run(ctx) -> list[Row]``.
Not part of the test suite: tests check behaviour, this checks speed.
"""
