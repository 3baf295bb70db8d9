"""Checks of what users pass to ``SQLRunHistory``: bad input fails at the call site, named."""
from __future__ import annotations

import json
import math
import numbers
import os
from typing import Any

from ..errors import InvalidArgumentError
from .run import RESUME_MODES
from ..db.values import check_unicode

#: The longest metric name, event kind, run or experiment name, in characters. At most 4 bytes
#: each in UTF-8, such a name stays under PostgreSQL's largest index entry (2704 bytes), so that
#: both backends can index it.
MAX_NAME_CHARS = 500

#: The environment variable that sets ``term_timeout`` when the argument is not given.
TERM_TIMEOUT_VAR = "RUNHISTORY_SQL_TERM_TIMEOUT"
#: By default a SIGTERM'd process has written its spill file this many seconds after the signal.
TERM_TIMEOUT_S = 5.0


def check_no_nul(what: str, text: str) -> None:
    """Refuse a NUL character, which PostgreSQL cannot store."""
    if "\x00" in text:
        raise ValueError(f"A {what} cannot contain a NUL character (PostgreSQL cannot store it): {text!r}.")


def check_name(what: str, text: str) -> None:
    """Refuse a name the database cannot store or index: a NUL, a lone surrogate, or more than
    :data:`MAX_NAME_CHARS` characters.

    :raises ValueError: naming ``what`` and the fix
    """
    if len(text) > MAX_NAME_CHARS:
        raise InvalidArgumentError(
            f"{'An' if what[0] in 'aeiou' else 'A'} {what} can be at most {MAX_NAME_CHARS} characters long (so that SQLite and PostgreSQL "
            f"can index it), not {len(text):,}: {text[:40]!r}... Use a shorter {what}."
        )
    check_no_nul(what, text)
    check_unicode(what, text)


def check_arguments(
    experiment: Any, run_name: Any, resume: Any, tags: Any, flush_interval: Any, heartbeat: Any,
) -> None:
    """Check the arguments of ``SQLRunHistory`` before anything touches the database."""
    if not isinstance(experiment, str) or not experiment:
        raise TypeError(f"experiment must be a non-empty str, not {experiment!r}.")
    if run_name is not None and (not isinstance(run_name, str) or not run_name):
        raise TypeError(f"run_name must be a non-empty str or None, not {run_name!r}.")
    for what, text in (("experiment", experiment), ("run_name", run_name or "")):
        check_name(what, text)
    if resume not in RESUME_MODES:
        raise ValueError(f"resume must be one of {', '.join(map(repr, RESUME_MODES))}, not {resume!r}.")
    if tags is not None:
        if not isinstance(tags, dict):
            raise TypeError(f"tags must be a dict, not {type(tags).__qualname__}.")
        try:
            text = json.dumps(tags, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"tags must be JSON-serialisable: {e}") from e
        check_unicode("text of the tags", text)
    if not isinstance(flush_interval, (int, float)) or not 0 < flush_interval <= 60:
        raise ValueError(f"flush_interval must be a number of seconds in (0, 60], not {flush_interval!r}.")
    if not isinstance(heartbeat, (int, float)) or not 0.05 <= heartbeat <= 3600:
        raise ValueError(f"heartbeat_interval must be a number of seconds in [0.05, 3600], not {heartbeat!r}.")


def as_epoch(epoch: Any) -> int:
    """An epoch as an ``int``: any integral number (a numpy integer, a 0-dim integer tensor, as a
    checkpoint's metadata may hold one), but not a bool, a float or a str.

    :raises TypeError: for anything else, naming it
    """
    return as_integral("The epoch", epoch)


def as_integral(what: str, value: Any) -> int:
    """``value`` as an ``int`` when it is an integral number: an int, a numpy integer or a 0-dim
    integer tensor, but not a bool, a float or a str (the rule of epochs and steps).

    :param what: the value, as the error's subject: ``"The epoch"``, ``"A step"``
    :raises TypeError: for anything else, naming it
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):  # numpy's bool is not Integral
        return int(value)
    dtype = getattr(value, "dtype", None)
    if type(value).__module__.startswith("torch") and getattr(value, "ndim", None) == 0 and dtype is not None \
            and not (dtype.is_floating_point or dtype.is_complex):
        item = value.item()
        if not isinstance(item, bool):
            return int(item)
    raise TypeError(
        f"{what} must be a non-negative int, not {type(value).__name__} {value!r}. Pass an int "
        "(a numpy integer or a 0-dim integer tensor also does)."
    )


def resolve_term_timeout(explicit: Any) -> float:
    """The SIGTERM close bound: ``explicit`` if given, else ``$RUNHISTORY_SQL_TERM_TIMEOUT``, else
    :data:`TERM_TIMEOUT_S`; a number of seconds in [0, 3600]."""
    if explicit is None:
        text = os.environ.get(TERM_TIMEOUT_VAR, "").strip()
        if not text:
            return TERM_TIMEOUT_S
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 3600:
            raise InvalidArgumentError(
                f"${TERM_TIMEOUT_VAR} must be a number of seconds in [0, 3600], not {text!r}. "
                "Fix or unset it, or pass term_timeout=."
            )
        return value
    if isinstance(explicit, bool) or not isinstance(explicit, (int, float)) or not 0 <= explicit <= 3600:
        raise InvalidArgumentError(f"term_timeout must be a number of seconds in [0, 3600], not {explicit!r}.")
    return float(explicit)
