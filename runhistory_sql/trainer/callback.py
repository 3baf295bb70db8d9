"""``RunTrackingCallback``: records each run's config snapshots and lifecycle beside its metrics."""
from __future__ import annotations

import logging
import sys
from typing import Any

from pytorch_accelerated.callbacks import TrainerCallback

from ..write.snapshot import dataclass_fields

log = logging.getLogger("runhistory_sql")


class RunTrackingCallback(TrainerCallback):
    """Snapshot ``trainer.run_config`` at every ``train()``/``evaluate()`` and record lifecycle events.

    Example::

        history = SQLRunHistory("sqlite:///runs.db", run_name="baseline")
        trainer = Trainer(model, loss_func, optimizer,
                          callbacks=(*DEFAULT_CALLBACKS, RunTrackingCallback()),
                          run_history=history)

    Events (``v_events.kind``): ``training_run_start``, ``epoch_end`` (with the epoch),
    ``stop_training`` (with the reason), ``training_run_end``, ``evaluation_run_start``,
    ``evaluation_run_end``. The callback moves itself to the front of the trainer's callbacks, so
    that a callback which exits the process in ``on_training_run_end`` (``TerminateOnNaNCallback``)
    cannot skip it. Recording never fails the training run: problems are logged.
    """

    def on_init_end(self, trainer: Any, **kwargs: Any) -> None:
        history = trainer.run_history
        if not callable(getattr(history, "record_config", None)):
            raise TypeError(
                "RunTrackingCallback needs the trainer's run_history to be a SQLRunHistory, not "
                f"{type(history).__qualname__}. Pass run_history=SQLRunHistory(...) to the Trainer."
            )
        handler = trainer.callback_handler
        # a new list: call_event is iterating over the old one right now
        handler.callbacks = [self, *(cb for cb in handler.callbacks if cb is not self)]

    def on_training_run_start(self, trainer: Any, **kwargs: Any) -> None:
        self._record(trainer, "config", "train")
        self._record(trainer, "training_run_start", num_epochs=trainer.run_config.num_epochs)
        self._record(trainer, "in_run", True)

    def on_training_run_epoch_end(self, trainer: Any, **kwargs: Any) -> None:
        self._record(trainer, "epoch_end", epoch=trainer.run_history.current_epoch)

    def on_stop_training_error(self, trainer: Any, **kwargs: Any) -> None:
        error = sys.exc_info()[1]  # the trainer calls this hook inside its `except StopTrainingError`
        self._record(trainer, "stop_training", reason=str(error) if error else None)

    def on_training_run_end(self, trainer: Any, **kwargs: Any) -> None:
        self._record(trainer, "training_run_end", epoch=trainer.run_history.current_epoch)
        self._record(trainer, "in_run", False)

    def on_evaluation_run_start(self, trainer: Any, **kwargs: Any) -> None:
        self._record(trainer, "config", "evaluate")
        self._record(trainer, "evaluation_run_start")
        self._record(trainer, "in_run", True)

    def on_evaluation_run_end(self, trainer: Any, **kwargs: Any) -> None:
        self._record(trainer, "evaluation_run_end")
        self._record(trainer, "in_run", False)

    def _record(self, trainer: Any, what: str, *args: Any, **payload: Any) -> None:
        history = trainer.run_history
        try:
            if what == "config":
                history.record_config(args[0], dataclass_fields(trainer.run_config))
            elif what == "in_run":
                history.set_in_run(args[0])
            else:
                history.log_event(what, **payload)
        except Exception as e:  # noqa: BLE001 - tracking must never fail the training run
            log.warning("runhistory-sql: could not record %s: %s", what, e)
