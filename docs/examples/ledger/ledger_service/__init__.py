"""A tiny in-memory ledger: the system under test of orchq's non-OrchQueue example."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AccountExists", "InsufficientFunds", "Ledger", "Transfer"]


class AccountExists(Exception):
    """The account name is taken."""


class InsufficientFunds(Exception):
    """The source account cannot cover the transfer."""


@dataclass(frozen=True)
class Transfer:
    source: str
    destination: str
    amount: int


@dataclass
class Ledger:
    balances: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    history: list[Transfer] = field(default_factory=list)

    def open(self, name: str, *, label: str | None = None, deposit: int = 0) -> None:
        if name in self.balances:
            raise AccountExists(name)
        self.balances[name] = deposit
        if label is not None:
            self.labels[name] = label

    def transfer(self, source: str, destination: str, amount: int) -> None:
        if self.balances[source] < amount:
            raise InsufficientFunds(f"{source} holds {self.balances[source]}, not {amount}")
        self.balances[source] -= amount
        self.balances[destination] += amount
        self.history.append(Transfer(source, destination, amount))
