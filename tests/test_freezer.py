"""TrackedModelFreezer: upstream ModelFreezer behaviour, with what really happened recorded.

The demo model has three layer groups: ``input`` (Linear 8->32: 256 + 32 = 288 numel),
``hidden`` (ReLU, Linear 32->32: 1024 + 32 = 1056, ReLU) and ``output`` (Linear 32->1: 33).

Observed on pytorch-accelerated 0.1.61, where ``__freeze_unfreeze`` passes its two flags to
``_change_layer_state`` swapped:
- ``freeze()`` returns ``None``; by default it freezes groups 0..-2 and leaves modes alone;
- ``freeze(set_modules_as_eval=True)`` sets ``requires_grad=True``: nothing is frozen;
- ``unfreeze()`` unfreezes and puts the layers it touched (frozen ones, and parameterless layers
  in eval mode) in train mode; it returns ``{group: {"params": [...]}}`` of the layers it touched;
- ``unfreeze(set_modules_as_training=False)`` sets ``requires_grad=False`` on the frozen layers
  (they stay frozen) and puts them in eval mode, yet returns them as "unfrozen".
- After ``train(2 epochs)`` + ``train(1 epoch, reset_run_history=False)`` the second run stops
  after ONE step: upstream compares its step limit (1 x 8 + 1) with absolute steps.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
import torch
from pytorch_accelerated import Trainer
from pytorch_accelerated.finetuning import ModelFreezer
from pytorch_accelerated.trainer import DEFAULT_CALLBACKS
from torch import nn

from runhistory_sql import RunTrackingCallback, SQLRunHistory, TrackedModelFreezer
from runhistory_sql.trainer.demo import make_datasets, make_model
from helpers import is_postgres, query, train
from tracking_support import events

INPUT, HIDDEN, OUTPUT = 288, 1056, 33
TOTAL = INPUT + HIDDEN + OUTPUT
NO_WORKERS = {"num_workers": 0}


def _event(call: str, args: dict[str, Any], **observed: Any) -> dict[str, Any]:
    """The payload of a freeze/unfreeze event: nothing changed unless ``observed`` says so."""
    return {
        "call": call, "args": args, "groups_frozen": [], "groups_unfrozen": [], "params_frozen": 0,
        "numel_frozen": 0, "params_unfrozen": 0, "numel_unfrozen": 0, "trainable_numel": TOTAL,
        "total_numel": TOTAL, "frozen_groups_after": [], "train_mode_after": ["train"] * 3, **observed,
    }


FREEZE_DEFAULTS = {"from_index": 0, "to_index": -2, "set_modules_as_eval": False}
UNFREEZE_DEFAULTS = {"from_index": -1, "to_index": 0, "set_modules_as_training": True}


def _state(model: nn.Module) -> list[tuple[str, bool, bool]]:
    """(name, requires_grad, module in train mode) of every parameter."""
    modules = dict(model.named_modules())
    return [
        (name, param.requires_grad, modules[name.rpartition(".")[0]].training)
        for name, param in model.named_parameters()
    ]


def _shapes(groups: Any) -> Any:
    if groups is None:
        return None
    return {idx: {key: [tuple(p.shape) for p in params] for key, params in group.items()} for idx, group in groups.items()}


@pytest.fixture
def history(url: str) -> Iterator[SQLRunHistory]:
    with SQLRunHistory(url, run_name="freeze") as opened:
        yield opened


@pytest.fixture
def freezers(history: SQLRunHistory) -> tuple[nn.Module, ModelFreezer, nn.Module, TrackedModelFreezer]:
    """A plain ModelFreezer and a TrackedModelFreezer, each on its own identical model."""
    plain_model, tracked_model = make_model(seed=0), make_model(seed=0)
    return plain_model, ModelFreezer(plain_model), tracked_model, TrackedModelFreezer(tracked_model, run_history=history)


def _call(freezers: Any, method: str, **kwargs: Any) -> Any:
    """Call ``method`` on both freezers; check they return and do the same; return the tracked result."""
    plain_model, plain, tracked_model, tracked = freezers
    expected = getattr(plain, method)(**kwargs)
    got = getattr(tracked, method)(**kwargs)
    assert type(got) is type(expected)
    assert _shapes(got) == _shapes(expected)
    if got is not None:  # the very parameters of the tracked model, as upstream returns them
        own = {id(p) for p in tracked_model.parameters()}
        assert all(id(p) in own for group in got.values() for p in group["params"])
    assert _state(tracked_model) == _state(plain_model)
    return got


def test_default_freeze_then_unfreeze_return_and_record_what_upstream_does(freezers: Any, history: SQLRunHistory, url: str) -> None:
    assert _call(freezers, "freeze") is None
    unfrozen = _call(freezers, "unfreeze")
    history.flush()

    assert _shapes(unfrozen) == {0: {"params": [(32, 8), (32,)]}, 1: {"params": [(32, 32), (32,)]}}
    assert events(url) == [
        (1, 1, "freeze", _event(
            "freeze", FREEZE_DEFAULTS, groups_frozen=[0, 1], params_frozen=4, numel_frozen=INPUT + HIDDEN,
            trainable_numel=OUTPUT, frozen_groups_after=[0, 1],
        )),
        (1, 1, "unfreeze", _event(
            "unfreeze", UNFREEZE_DEFAULTS, groups_unfrozen=[0, 1], params_unfrozen=4, numel_unfrozen=INPUT + HIDDEN,
        )),
    ]


def test_freeze_with_set_modules_as_eval_freezes_nothing_and_says_so(freezers: Any, history: SQLRunHistory, url: str) -> None:
    assert _call(freezers, "freeze", set_modules_as_eval=True) is None
    history.flush()

    _, _, tracked_model, _ = freezers
    assert all(param.requires_grad for param in tracked_model.parameters())
    assert events(url) == [
        (1, 1, "freeze", _event("freeze", {**FREEZE_DEFAULTS, "set_modules_as_eval": True})),
    ]


def test_unfreeze_without_set_modules_as_training_keeps_them_frozen_and_says_so(freezers: Any, history: SQLRunHistory, url: str) -> None:
    _call(freezers, "freeze")
    returned = _call(freezers, "unfreeze", set_modules_as_training=False)
    history.flush()

    # upstream returns the layers as unfrozen, but they are frozen still, and now in eval mode
    assert _shapes(returned) == {0: {"params": [(32, 8), (32,)]}, 1: {"params": [(32, 32), (32,)]}}
    assert not any(p.requires_grad for group in returned.values() for p in group["params"])
    assert events(url)[1] == (1, 1, "unfreeze", _event(
        "unfreeze", {**UNFREEZE_DEFAULTS, "set_modules_as_training": False},
        trainable_numel=OUTPUT, frozen_groups_after=[0, 1], train_mode_after=["eval", "mixed", "train"],
    ))


def test_partial_ranges_and_batch_norms_are_recorded_as_observed(history: SQLRunHistory, url: str) -> None:
    # BatchNorm layers stay trainable unless freeze_batch_norms=True: the group is not all frozen
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8)), nn.Linear(8, 1))
    plain = ModelFreezer(nn.Sequential(nn.Linear(4, 8), nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8)), nn.Linear(8, 1)))
    tracked = TrackedModelFreezer(model, run_history=history)
    total = 40 + 72 + 16 + 9

    assert tracked.freeze(from_index=1, to_index=1) is plain.freeze(from_index=1, to_index=1) is None
    assert _shapes(tracked.unfreeze(from_index=0, to_index=-1)) == _shapes(plain.unfreeze(from_index=0, to_index=-1)) == {
        1: {"params": [(8, 8), (8,)]},
    }
    history.flush()

    assert events(url) == [
        (1, 1, "freeze", {
            "call": "freeze", "args": {"from_index": 1, "to_index": 1, "set_modules_as_eval": False},
            "groups_frozen": [1], "groups_unfrozen": [], "params_frozen": 2, "numel_frozen": 72,
            "params_unfrozen": 0, "numel_unfrozen": 0, "trainable_numel": total - 72, "total_numel": total,
            "frozen_groups_after": [], "train_mode_after": ["train"] * 3,
        }),
        (1, 1, "unfreeze", {
            "call": "unfreeze", "args": {"from_index": 0, "to_index": -1, "set_modules_as_training": True},
            "groups_frozen": [], "groups_unfrozen": [1], "params_frozen": 0, "numel_frozen": 0,
            "params_unfrozen": 2, "numel_unfrozen": 72, "trainable_numel": total, "total_numel": total,
            "frozen_groups_after": [], "train_mode_after": ["train"] * 3,
        }),
    ]


class _Scaled(nn.Module):
    """A parameter of the model itself (in no layer group), and one layer shared by two groups."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        shared = nn.Linear(4, 4)
        self.first = nn.Sequential(nn.Linear(4, 4), shared)
        self.second = nn.Sequential(shared)
        self.head = nn.Linear(4, 1)


def test_totals_are_the_whole_models_and_a_shared_parameter_counts_once(history: SQLRunHistory, url: str) -> None:
    model = _Scaled()
    assert sum(p.numel() for p in model.parameters()) == 3 + 20 + 20 + 5

    TrackedModelFreezer(model, run_history=history).freeze()
    history.flush()

    # ModelFreezer never touches `scale`; the shared layer is frozen once, seen from both groups
    ((_, _, _, payload),) = events(url)
    assert model.scale.requires_grad and not model.second[0].weight.requires_grad
    assert {key: payload[key] for key in (
        "groups_frozen", "params_frozen", "numel_frozen", "trainable_numel", "total_numel", "frozen_groups_after",
    )} == {
        "groups_frozen": [0, 1], "params_frozen": 4, "numel_frozen": 40,
        "trainable_numel": 3 + 5, "total_numel": 48, "frozen_groups_after": [0, 1],
    }


def test_a_freezer_needs_a_run_history_that_records_events() -> None:
    with pytest.raises(TypeError, match=r"^run_history must have a log_event method \(a SQLRunHistory\), not dict\.$"):
        TrackedModelFreezer(make_model(), run_history={})


# -- the transfer-learning pattern with the real Trainer --------------------------------------


def _train(trainer: Trainer, num_epochs: int, **kwargs: Any) -> None:
    train(trainer, num_epochs, datasets=make_datasets(n_train=256, n_eval=64),
          train_dataloader_kwargs=NO_WORKERS, eval_dataloader_kwargs=NO_WORKERS, **kwargs)


def test_freeze_train_unfreeze_train_is_recorded_beside_the_metrics(url: str) -> None:
    model = make_model()
    with SQLRunHistory(url, run_name="finetune") as history:
        freezer = TrackedModelFreezer(model, run_history=history)
        freezer.freeze()
        trainer = Trainer(
            model, loss_func=nn.MSELoss(), optimizer=torch.optim.SGD(freezer.get_trainable_parameters(), lr=0.01),
            callbacks=[*DEFAULT_CALLBACKS, RunTrackingCallback()], run_history=history,
        )
        input_before = model.input.weight.detach().clone()
        _train(trainer, num_epochs=2)
        input_after_frozen = model.input.weight.detach().clone()
        groups = freezer.unfreeze()
        for group in groups.values():
            trainer.optimizer.add_param_group(group)
        _train(trainer, num_epochs=1, reset_run_history=False)
        losses = history.get_metric_values("train_loss_epoch")

    # what the events say happened, happened
    assert torch.equal(input_before, input_after_frozen)
    assert not torch.equal(input_after_frozen, model.input.weight)
    assert sorted(groups) == [0, 1]
    assert [(stage, epoch, kind) for stage, epoch, kind, _ in events(url)] == [
        (1, 1, "freeze"),
        (1, 1, "training_run_start"), (1, 1, "epoch_end"), (1, 2, "epoch_end"), (1, 3, "training_run_end"),
        (1, 3, "unfreeze"),
        (1, 3, "training_run_start"), (1, 3, "epoch_end"), (1, 4, "training_run_end"),
    ]
    (freeze,) = [payload for _, _, kind, payload in events(url) if kind == "freeze"]
    (unfreeze,) = [payload for _, _, kind, payload in events(url) if kind == "unfreeze"]
    assert (freeze["groups_frozen"], freeze["numel_frozen"], freeze["trainable_numel"]) == ([0, 1], INPUT + HIDDEN, OUTPUT)
    # the trainer left the model in eval mode (its last eval epoch); unfreeze() put the layers it touched in train mode
    assert unfreeze == _event(
        "unfreeze", UNFREEZE_DEFAULTS, groups_unfrozen=[0, 1], params_unfrozen=4, numel_unfrozen=INPUT + HIDDEN,
        train_mode_after=["train", "train", "eval"],
    )
    assert query(url, "SELECT stage, epoch FROM v_metrics WHERE metric = 'train_loss_epoch' ORDER BY seq") == [
        (1, 1), (1, 2), (1, 3),
    ]
    assert query(url, "SELECT value FROM v_metrics WHERE metric = 'train_loss_epoch' ORDER BY seq") == [
        (loss,) for loss in losses
    ]

    # a second run that only froze, for the query to leave out
    with SQLRunHistory(url, run_name="frozen-only") as other:
        TrackedModelFreezer(make_model(), run_history=other).freeze()
        other.update_metric("train_loss_epoch", 1.0)

    # payload is JSON text: SQLite reads it with json_extract, PostgreSQL with a cast to json
    if is_postgres(url):
        groups_unfrozen = "(e.payload::json -> 'groups_unfrozen')"
    else:
        groups_unfrozen = "json_extract(e.payload, '$.groups_unfrozen')"
    unfrozen_before_epoch_5 = f"""
        SELECT r.run_name, e.epoch, {groups_unfrozen}, m.value
        FROM v_events e
        JOIN v_runs r ON r.run_id = e.run_id
        JOIN v_metrics m ON m.run_id = e.run_id AND m.stage = e.stage AND m.epoch = e.epoch
                        AND m.metric = 'train_loss_epoch'
        WHERE e.kind = 'unfreeze' AND e.epoch < 5
          AND json_array_length({groups_unfrozen}) > 0
    """
    # SQLite gives the array back as JSON text ("[0,1]"); psycopg decodes a json value itself
    expected_groups = [0, 1] if is_postgres(url) else "[0,1]"
    assert query(url, unfrozen_before_epoch_5) == [("finetune", 3, expected_groups, losses[2])]
    assert json.loads(query(url, "SELECT payload FROM v_events WHERE run_id = 2")[0][0])["groups_frozen"] == [0, 1]
