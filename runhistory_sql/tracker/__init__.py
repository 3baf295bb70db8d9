"""accelerate plug-in: :class:`SQLTracker`, for plain loops that log with ``accelerator.log``.

Importing this package registers the tracker with accelerate (``register_tracker_class``, where
the installed accelerate has it), so that ``Accelerator(log_with="runhistory_sql")`` works.
``import runhistory_sql`` alone does not import it.
"""
from .sqltracker import SQLTracker

__all__ = ["SQLTracker"]
