"""``TrackedModelFreezer``: a ``ModelFreezer`` whose freezes and unfreezes are recorded as events.

Upstream swaps two flags inside ``freeze``/``unfreeze``: ``freeze(set_modules_as_eval=True)``
freezes nothing, and ``unfreeze(set_modules_as_training=False)`` leaves the frozen layers frozen
(setting ``requires_grad=False`` again), puts them in eval mode, and returns them as unfrozen. So
the event records what was OBSERVED on the model before and after the call, next to the
arguments that were given.
"""
from __future__ import annotations

import logging
from typing import Any

from pytorch_accelerated.finetuning import ModelFreezer

log = logging.getLogger("runhistory_sql")


class TrackedModelFreezer(ModelFreezer):
    """A ``ModelFreezer`` that logs every ``freeze()``/``unfreeze()`` to the run history.

    Example::

        history = SQLRunHistory("sqlite:///runs.db", run_name="finetune")
        freezer = TrackedModelFreezer(model, run_history=history)
        freezer.freeze()                  # event "freeze" in v_events
        trainer.train(...)
        groups = freezer.unfreeze()       # event "unfreeze"
        for group in groups.values():
            trainer.optimizer.add_param_group(group)
        trainer.train(..., reset_run_history=False)

    Each call records one event (``v_events.kind`` ``freeze`` or ``unfreeze``) at the run's current
    stage and epoch, with the payload keys ``call``, ``args`` (as given), ``groups_frozen`` and
    ``groups_unfrozen`` (layer-group indices in which some parameter changed),
    ``params_frozen``/``numel_frozen`` and ``params_unfrozen``/``numel_unfrozen`` (tensors and
    elements that changed; a shared parameter counts once), ``trainable_numel`` and
    ``total_numel`` (of the whole model, after the call), ``frozen_groups_after`` (groups with
    parameters, none trainable) and ``train_mode_after`` (per group: ``train``, ``eval`` or
    ``mixed``). The result of the call is upstream's, even if the event cannot be recorded.

    :param model: the model, as for ``ModelFreezer``
    :param freeze_batch_norms: as for ``ModelFreezer``
    :param run_history: the history to record events in (anything with ``log_event``)
    """

    def __init__(self, model: Any, freeze_batch_norms: bool = False, *, run_history: Any) -> None:
        if not callable(getattr(run_history, "log_event", None)):
            raise TypeError(
                "run_history must have a log_event method (a SQLRunHistory), not "
                f"{type(run_history).__qualname__}."
            )
        super().__init__(model, freeze_batch_norms=freeze_batch_norms)
        self.run_history = run_history

    def freeze(self, from_index: int = 0, to_index: int = -2, set_modules_as_eval: bool = False) -> Any:
        before = self._observe()
        result = super().freeze(from_index, to_index, set_modules_as_eval)
        args = {"from_index": from_index, "to_index": to_index, "set_modules_as_eval": set_modules_as_eval}
        self._safely_record("freeze", args, before)
        return result

    def unfreeze(self, from_index: int = -1, to_index: int = 0, set_modules_as_training: bool = True) -> Any:
        before = self._observe()
        result = super().unfreeze(from_index, to_index, set_modules_as_training)
        args = {"from_index": from_index, "to_index": to_index, "set_modules_as_training": set_modules_as_training}
        self._safely_record("unfreeze", args, before)
        return result

    def _safely_record(self, call: str, args: dict[str, Any], before: tuple[dict[int, bool], list[str]]) -> None:
        # the model has changed by now: the caller must get upstream's result (the parameter
        # groups to add to the optimizer) even if the event cannot be recorded
        try:
            self._record(call, args, before)
        except Exception as e:  # noqa: BLE001 - recording must never break fine-tuning
            log.warning("runhistory-sql: could not record %s: %s", call, e)

    def _observe(self) -> tuple[dict[int, bool], list[str]]:
        """Each parameter's ``requires_grad`` (by identity), and each layer group's mode."""
        grads = {id(p): p.requires_grad for p in self.model.parameters()}
        modes = [
            _mode([m.training for m in module.modules() if not list(m.children())])
            for module in self._layer_groups.values()
        ]
        return grads, modes

    def _record(self, call: str, args: dict[str, Any], before: tuple[dict[int, bool], list[str]]) -> None:
        (was, _), (now, modes) = before, self._observe()
        # every parameter counts once, however many groups share it; the totals are the whole
        # model's, parameters outside any layer group (which ModelFreezer never touches) included
        params = {id(p): p for p in self.model.parameters()}
        members = [{id(p) for p in module.parameters()} for module in self._layer_groups.values()]
        froze = [key for key in params if was.get(key, True) and not now[key]]
        unfroze = [key for key in params if not was.get(key, True) and now[key]]
        self.run_history.log_event(
            call,
            call=call,
            args=args,
            groups_frozen=[i for i, group in enumerate(members) if group.intersection(froze)],
            groups_unfrozen=[i for i, group in enumerate(members) if group.intersection(unfroze)],
            params_frozen=len(froze),
            numel_frozen=sum(params[key].numel() for key in froze),
            params_unfrozen=len(unfroze),
            numel_unfrozen=sum(params[key].numel() for key in unfroze),
            trainable_numel=sum(p.numel() for key, p in params.items() if now[key]),
            total_numel=sum(p.numel() for p in params.values()),
            frozen_groups_after=[i for i, group in enumerate(members) if group and not any(now[k] for k in group)],
            train_mode_after=modes,
        )


def _mode(modes: list[bool]) -> str:
    """Summarise the training flags of a group's leaf modules: "train", "eval" or "mixed"."""
    if all(modes):
        return "train"
    return "eval" if not any(modes) else "mixed"
