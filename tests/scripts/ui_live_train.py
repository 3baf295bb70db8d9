"""A run that grows while a test watches it in the browser, for tests/test_ui_pages.py.

    PYTHONPATH=. python tests/scripts/ui_live_train.py URL EPOCHS

For each epoch it waits for a line on stdin (the test's go), records ``loss`` = 1 / epoch as the
trainer does (``update_metric``, then ``_increment_epoch``, which returns once the epoch is
committed) and prints ``EPOCH n``. After one more line it closes the run (``finished``) and prints
``CLOSED``.
"""
from __future__ import annotations

import sys

from runhistory_sql import SQLRunHistory

url, epochs = sys.argv[1], int(sys.argv[2])
history = SQLRunHistory(url, experiment="live", run_name="growing")
print("OPEN", flush=True)
for epoch in range(1, epochs + 1):
    sys.stdin.readline()
    history.update_metric("loss", 1.0 / epoch)
    history._increment_epoch()
    print(f"EPOCH {epoch}", flush=True)
sys.stdin.readline()
history.close()
print("CLOSED", flush=True)
