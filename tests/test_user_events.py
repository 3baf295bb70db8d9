"""Users' own events (``log_event``) and a closed history, on SQLite and a real PostgreSQL."""
from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from runhistory_sql import RunHistorySQLError, SQLRunHistory
from helpers import dump, query
from tracking_support import events


def test_log_event_records_user_events_at_the_current_stage_and_epoch(url: str) -> None:
    with SQLRunHistory(url, run_name="own") as history:
        history.log_event("note", text="before any metric")
        history.update_metric("loss", 1.0)
        history._increment_epoch()
        history.log_event("lr_change", old=0.1, new=0.01, groups=[0, 1])
        history.reset()
        history.update_metric("loss", 0.5)
        history.log_event("checkpoint", path="ckpt/epoch_1", best=True, metrics={"loss": 0.5})

    assert events(url) == [
        (1, 1, "note", {"text": "before any metric"}),
        (1, 2, "lr_change", {"old": 0.1, "new": 0.01, "groups": [0, 1]}),
        (2, 1, "checkpoint", {"path": "ckpt/epoch_1", "best": True, "metrics": {"loss": 0.5}}),
    ]


def test_log_event_refuses_bad_kinds_and_payloads_and_records_nothing(url: str) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with SQLRunHistory(url, run_name="bad") as history:
        history.flush()
        before = dump(url)
        for kind, message in [
            ("", "An event kind must be a non-empty str, not ''."),
            (3, "An event kind must be a non-empty str, not 3."),
            (None, "An event kind must be a non-empty str, not None."),
        ]:
            with pytest.raises(TypeError) as raised:
                history.log_event(kind, x=1)  # type: ignore[arg-type]
            assert str(raised.value) == message
        with pytest.raises(TypeError, match=r"^The payload of event 'loop' cannot be stored as JSON: Circular reference detected$"):
            history.log_event("loop", items=loop)
        history.flush()
        assert {t: r for t, r in dump(url).items() if t != "runs"} == {t: r for t, r in before.items() if t != "runs"}
    assert events(url) == []


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def test_log_event_payloads_are_always_valid_json(url: str) -> None:
    with SQLRunHistory(url, run_name="nan") as history:
        history.log_event("fine", lr=0.1, loss=torch.tensor(0.5))
        history.log_event("lr_change", lr=float("nan"), top=float("inf"), loss=torch.tensor(0.5))

    stored = [
        (kind, json.loads(payload, parse_constant=_no_constants))
        for kind, payload in query(url, "SELECT kind, payload FROM v_events ORDER BY event_id")
    ]
    # a tensor is stored the same way with or without a NaN beside it
    assert stored == [
        ("fine", {"lr": 0.1, "loss": 0.5}),
        ("lr_change", {"lr": "NaN", "top": "Infinity", "loss": 0.5}),
    ]


def test_an_error_inside_the_with_block_survives_an_early_close(url: str) -> None:
    with pytest.raises(KeyError, match="mine"):
        with SQLRunHistory(url, run_name="early") as history:
            history.close()
            raise KeyError("mine")

    assert query(url, "SELECT status FROM v_runs") == [("finished",)]


def test_recording_into_a_closed_history_is_an_error(url: str) -> None:
    history = SQLRunHistory(url, run_name="closed")
    history.update_metric("loss", 1.0)
    history.close()
    before = dump(url)

    with pytest.raises(RunHistorySQLError, match="is closed"):
        history.log_event("late", x=1)
    with pytest.raises(RunHistorySQLError, match="is closed"):
        history.update_metric("loss", 2.0)
    assert dump(url) == before


@pytest.mark.parametrize(
    "kind, payload, error, message",
    [
        ("k\ud800", {"x": 1}, ValueError, r"^The event kind is not valid Unicode text: '\\ud800' at position 1 "),
        ("k" * 501, {"x": 1}, ValueError, r"^An event kind can be at most 500 characters long"),
        ("note", {"text": "a\udfffb"}, ValueError, r"^The payload of event 'note' is not valid Unicode text: '\\udfff' "),
        ("note", {"path": object()}, TypeError, r"^The payload of event 'note' cannot be stored as JSON: Object of "
                                                r"type builtins\.object is not JSON serializable\. Use numbers, str, dict, list, "
                                                r"None or tensors inside it\.$"),
        ("note", {"lr": float("nan"), "path": object()}, TypeError, r"^The payload of event 'note' cannot be stored as JSON: Object of type builtins\.object"),
        ("note", {"ids": {1, 2}}, TypeError, r"^The payload of event 'note' cannot be stored as JSON: Object of type builtins\.set"),
        ("note", {"big": torch.zeros(10_001)}, ValueError, r"^Cannot record a torch\.Tensor of 10,001 elements for event 'note'"),
        ("note", {"x": torch.tensor(1.0, device="meta")}, TypeError, r"^Cannot record the torch\.Tensor for event 'note': reading it failed"),
    ],
)
def test_log_event_refuses_what_update_metric_refuses_and_records_nothing(url: str, kind: str, payload: dict[str, Any], error: type, message: str) -> None:
    with SQLRunHistory(url, run_name="strict") as history:
        history.flush()
        before = dump(url)

        with pytest.raises(error, match=message):
            history.log_event(kind, **payload)
        history.flush()

        assert {t: r for t, r in dump(url).items() if t != "runs"} == {t: r for t, r in before.items() if t != "runs"}
    assert events(url) == []


def test_record_config_stores_text_no_database_takes_as_escapes(url: str) -> None:
    with SQLRunHistory(url, run_name="cfg") as history:
        history.record_config("train", {"mixed_precision": "fp\ud800\x00", "train_dl_kwargs": {"name": "\udc80"}})

    assert query(url, "SELECT mixed_precision, train_dl_kwargs FROM v_configs") == [("fp\\ud800\\x00", '{"name": "\\udc80"}')]
