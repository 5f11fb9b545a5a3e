"""The reference model on the spec's own examples, so the machine's oracle is itself checked."""

from __future__ import annotations

import pytest

from harness.properties.ledger import Ledger
from harness.properties.model import Priority, QueueModel


def _fill(model: QueueModel, tasks: list[tuple[str, Priority]]) -> None:
    for task_id, priority in tasks:
        expected = model.expect_admission(priority)
        assert expected.admitted
        model.admit(task_id, priority, expected.victim)


def _drain(model: QueueModel) -> list[str]:
    out: list[str] = []
    while (lane := model.expect_dispatch()) is not None:
        out.append(model.dispatched(lane))
        window = model.fairness_window()
        assert window is None or "batch" in window
    return out


def test_fairness_budget_of_four_gives_every_fourth_dispatch_to_batch() -> None:
    model = QueueModel(100, "reject", 4)
    _fill(model, [(f"i{n}", "interactive") for n in range(8)])
    _fill(model, [(f"b{n}", "batch") for n in range(3)])
    assert _drain(model) == [
        "i0",
        "i1",
        "i2",
        "b0",
        "i3",
        "i4",
        "i5",
        "b1",
        "i6",
        "i7",
        "b2",
    ]


def test_interactive_dispatches_without_waiting_batch_do_not_spend_the_budget() -> None:
    model = QueueModel(100, "reject", 3)
    _fill(model, [(f"i{n}", "interactive") for n in range(4)])
    assert [model.dispatched("interactive") for _ in range(2)] == ["i0", "i1"]
    _fill(model, [("b0", "batch")])
    assert _drain(model) == ["i2", "i3", "b0"]


@pytest.mark.parametrize(
    ("queued", "newcomer", "victim", "refusal"),
    [
        ([("i0", "interactive"), ("b0", "batch"), ("b1", "batch")], "interactive", "b0", None),
        ([("i0", "interactive"), ("i1", "interactive")], "interactive", "i0", None),
        ([("b0", "batch"), ("i0", "interactive")], "batch", "b0", None),
        ([("i0", "interactive"), ("i1", "interactive")], "batch", None, "QUEUE_FULL_DROP_LRU"),
    ],
)
def test_drop_lru_victims(
    queued: list[tuple[str, Priority]], newcomer: Priority, victim: str | None, refusal: str | None
) -> None:
    model = QueueModel(len(queued), "drop_lru", 4)
    _fill(model, queued)
    expected = model.expect_admission(newcomer)
    assert (expected.victim, expected.refusal) == (victim, refusal)
    assert expected.req == ("ORCH-0098" if refusal else "ORCH-0096")


def test_reject_refuses_at_capacity() -> None:
    model = QueueModel(1, "reject", 4)
    _fill(model, [("b0", "batch")])
    expected = model.expect_admission("interactive")
    assert (expected.admitted, expected.refusal, expected.req) == (
        False,
        "ADMISSION_REJECT",
        "ORCH-0095",
    )


def test_ledger_restart_returns_queued_tasks_in_admission_order() -> None:
    ledger = Ledger()
    try:
        for task_id, priority in [("b1", "batch"), ("i2", "interactive"), ("b3", "batch")]:
            ledger.admitted(task_id, priority)
        ledger.moved("i2", "running")
        ledger.moved("b1", "cancelled")
        assert ledger.restart() == [("b3", "batch")]
        assert ledger.states(["b1", "i2", "b3"]) == {
            "b1": "cancelled",
            "i2": "running",
            "b3": "queued",
        }
    finally:
        ledger.close()
    assert not ledger.path.exists()
