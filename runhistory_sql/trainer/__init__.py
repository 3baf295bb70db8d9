"""pytorch-accelerated plug-ins: ``RunTrackingCallback``, ``TrackedModelFreezer`` and the demo.

They import :mod:`runhistory_sql.write` and :mod:`runhistory_sql.db`.
"""
