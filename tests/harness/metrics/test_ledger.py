"""The API readings the checkpoint and webhook metrics checks take as truth.

Spec: ORCH-0420.
"""

from __future__ import annotations

import pytest

from harness.metrics.ledger import Delivery, attempt_outcomes


@pytest.mark.req("ORCH-0420")
def test_attempts_between_two_readings_count_by_how_each_delivery_ended() -> None:
    before = {
        "d1": Delivery(1, "pending"),
        "d2": Delivery(2, "pending"),
        "d3": Delivery(1, "delivered"),
    }
    after = {
        "d1": Delivery(3, "delivered"),  # two more: one retried, then delivered
        "d2": Delivery(3, "pending"),  # one more, retried
        "d3": Delivery(1, "delivered"),  # none
        "d4": Delivery(2, "failed"),  # new: one retried, then failed
        "d5": Delivery(0, "pending"),  # new, not sent yet
    }
    assert attempt_outcomes(before, after) == {"delivered": 1, "retried": 3, "failed": 1}
    assert attempt_outcomes(after, after) == {"delivered": 0, "retried": 0, "failed": 0}
