"""Which process of a distributed launch this is: only world-process-zero writes."""
from __future__ import annotations

import os

_RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID")


def world_process_index() -> int:
    """Return this process's global rank.

    Taken from accelerate's ``PartialState`` when it is initialised (never initialising it),
    else from the launcher's environment (``RANK`` and the MPI/SLURM equivalents), else 0.
    """
    try:
        from accelerate.state import PartialState
    except ImportError:  # pragma: no cover - accelerate comes with pytorch-accelerated
        PartialState = None
    if PartialState is not None and PartialState._shared_state:
        return int(PartialState().process_index)
    for name in _RANK_VARIABLES:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return 0
