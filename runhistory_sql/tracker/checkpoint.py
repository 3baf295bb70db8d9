"""What an accelerate checkpoint holds of an ``SQLTracker``, and which steps loading it supersedes.

``accelerator.save_state`` stores ``tracker.state_dict()``: the run (experiment, name, id) and
its last step, the largest step logged before the save. ``accelerator.load_state`` hands it
back to ``tracker.load_state_dict``, which rewinds the run to the step after it: the
checkpoint's step is kept, every point of a later step (logged by a process after the save)
is superseded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError

#: the layout of the state dict; a later layout bumps it
STATE_VERSION = 1
_KEYS = {"version", "experiment", "run_name", "run_id", "last_step"}


@dataclass(frozen=True)
class Checkpoint:
    """The tracker's part of a checkpoint."""

    experiment: str
    run_name: str
    run_id: int | None
    #: the largest step logged before ``save_state``; ``None``: no step had been logged
    last_step: int | None

    @property
    def first_superseded(self) -> int:
        """The step the run is rewound to on load: every point at this step or later is superseded."""
        return 0 if self.last_step is None else self.last_step + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION, "experiment": self.experiment, "run_name": self.run_name,
            "run_id": self.run_id, "last_step": self.last_step,
        }


def from_dict(state: Any) -> Checkpoint:
    """Read a state dict that ``SQLTracker.state_dict`` made.

    :raises InvalidArgumentError: it is not one (another object's state, a newer layout)
    """
    if not isinstance(state, dict) or set(state) != _KEYS or state["version"] != STATE_VERSION:
        shown = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise InvalidArgumentError(
            f"This is not the state of an SQLTracker of this version (got {shown}): load a checkpoint "
            "saved with the same objects registered for checkpointing, in the same order."
        )
    step = state["last_step"]
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise InvalidArgumentError(f"The checkpoint's last_step must be a non-negative int or None, not {step!r}.")
    return Checkpoint(state["experiment"], state["run_name"], state["run_id"], step)


def check_same_run(checkpoint: Checkpoint, experiment: str, run_name: str | None) -> None:
    """Refuse to rewind a run with another run's checkpoint.

    :raises InvalidArgumentError: naming both runs and the fix
    """
    if (checkpoint.experiment, checkpoint.run_name) != (experiment, run_name):
        mine = f"run {run_name!r} of experiment {experiment!r}" if run_name else f"a new run of experiment {experiment!r}"
        raise InvalidArgumentError(
            f"The checkpoint belongs to run {checkpoint.run_name!r} of experiment {checkpoint.experiment!r}, "
            f"but this SQLTracker records {mine}. To continue the checkpoint's run, create the tracker with "
            f"experiment={checkpoint.experiment!r}, run_name={checkpoint.run_name!r}, resume='allow'."
        )
