import pytest

from ledger_service import AccountExists, Ledger


@pytest.mark.req("LEDGER-0001")
def test_a_new_account_holds_nothing(ledger: Ledger) -> None:
    ledger.open("alice")
    assert ledger.balances["alice"] == 0, "LEDGER-0001: a new account starts at zero"


@pytest.mark.contract
@pytest.mark.req("LEDGER-0002")
def test_a_taken_name_is_refused(ledger: Ledger) -> None:
    ledger.open("alice")
    with pytest.raises(AccountExists):
        ledger.open("alice")


@pytest.mark.req("LEDGER-0003")
def test_an_account_may_carry_a_label(ledger: Ledger) -> None:
    ledger.open("alice", label="savings")
    assert ledger.labels["alice"] == "savings"
