"""``TrackedModelFreezer``: a ``ModelFreezer`` whose freezes and unfreezes are recorded as events.

Upstream swaps two flags inside ``freeze``/``unfreeze`` (``freeze(set_modules_as_eval=True)``
freezes nothing, ``unfreeze(set_modules_as_training=False)`` freezes), so the event records what
was OBSERVED on the model before and after the call, next to the arguments that were given.
"""
from __future__ import annotations

from typing import Any

from pytorch_accelerated.finetuning import ModelFreezer


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
        self._record("freeze", args, before)
        return result

    def unfreeze(self, from_index: int = -1, to_index: int = 0, set_modules_as_training: bool = True) -> Any:
        before = self._observe()
        result = super().unfreeze(from_index, to_index, set_modules_as_training)
        args = {"from_index": from_index, "to_index": to_index, "set_modules_as_training": set_modules_as_training}
        self._record("unfreeze", args, before)
        return result

    def _observe(self) -> list[tuple[list[tuple[bool, int]], list[bool]]]:
        """Per layer group: each parameter's (requires_grad, numel), each leaf module's training flag."""
        return [
            (
                [(p.requires_grad, p.numel()) for p in module.parameters()],
                [m.training for m in module.modules() if not list(m.children())],
            )
            for module in self._layer_groups.values()
        ]

    def _record(self, call: str, args: dict[str, Any], before: list[Any]) -> None:
        after = self._observe()
        changes: dict[str, tuple[list[int], int, int]] = {"froze": ([], 0, 0), "unfroze": ([], 0, 0)}
        for idx, ((old, _), (new, _)) in enumerate(zip(before, after)):
            for (was, numel), (now, _) in zip(old, new):
                if was != now:
                    key = "unfroze" if now else "froze"
                    groups, tensors, total = changes[key]
                    if idx not in groups:
                        groups.append(idx)
                    changes[key] = (groups, tensors + 1, total + numel)
        params = [p for group, _ in after for p in group]
        (frozen, n_frozen, numel_frozen), (unfrozen, n_unfrozen, numel_unfrozen) = changes["froze"], changes["unfroze"]
        self.run_history.log_event(
            call,
            call=call,
            args=args,
            groups_frozen=frozen,
            groups_unfrozen=unfrozen,
            params_frozen=n_frozen,
            numel_frozen=numel_frozen,
            params_unfrozen=n_unfrozen,
            numel_unfrozen=numel_unfrozen,
            trainable_numel=sum(numel for grad, numel in params if grad),
            total_numel=sum(numel for _, numel in params),
            frozen_groups_after=[i for i, (g, _) in enumerate(after) if g and not any(grad for grad, _ in g)],
            train_mode_after=[_mode(modes) for _, modes in after],
        )


def _mode(modes: list[bool]) -> str:
    """Summarise the training flags of a group's leaf modules: "train", "eval" or "mixed"."""
    if all(modes):
        return "train"
    return "eval" if not any(modes) else "mixed"
