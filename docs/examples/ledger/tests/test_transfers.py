import pytest

from ledger_service import InsufficientFunds, Ledger, Transfer


@pytest.fixture
def funded(ledger: Ledger) -> Ledger:
    ledger.open("alice", deposit=100)
    ledger.open("bob")
    return ledger


@pytest.mark.contract
@pytest.mark.req("LEDGER-0004")
@pytest.mark.parametrize("amount", [0, 1, 100])
def test_a_transfer_moves_the_amount(funded: Ledger, amount: int) -> None:
    funded.transfer("alice", "bob", amount)
    assert funded.balances == {"alice": 100 - amount, "bob": amount}, "LEDGER-0004"


@pytest.mark.req("LEDGER-0005")
def test_an_overdraft_is_refused_and_changes_nothing(funded: Ledger) -> None:
    with pytest.raises(InsufficientFunds):
        funded.transfer("alice", "bob", 101)
    assert funded.balances == {"alice": 100, "bob": 0}, "LEDGER-0005"


@pytest.mark.req("LEDGER-0006")
def test_the_history_keeps_transfers_in_order(funded: Ledger) -> None:
    funded.transfer("alice", "bob", 10)
    funded.transfer("bob", "alice", 5)
    assert funded.history == [Transfer("alice", "bob", 10), Transfer("bob", "alice", 5)]
