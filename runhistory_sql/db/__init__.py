"""Storage: engines and URLs, the schema, how a value is stored, the clock, migrations.

The bottom layer: it imports nothing of the others.
"""
