"""The dashboard: ``runhistory-sql ui`` (a Starlette app over a RunStore) and its JSON API.

Layer 4 beside :mod:`runhistory_sql.cli`; it needs the ``ui`` extra (Starlette, uvicorn, Jinja2).
"""
