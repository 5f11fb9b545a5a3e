import pytest

from ledger_service import Ledger


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()
