"""A log written by the ``eventsourcing`` library, projected and checked.

Builds the SQLite log of a small eventsourcing application (wallets that are
opened, credited, debited and relabelled), writes a topic mapping for it,
projects the log with Projectionist on 2 shards, and checks each wallet's
Balance and WalletSummary against the aggregate's own state. ``Opened`` and
``Relabelled`` are left unmapped: they move the position and change no
model. Needs the extra: ``pip install 'projectionist[eventsourcing]'``.

    python -m examples.eventsourcing_log [--dir DIR] [--wallets 40] [--operations 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from actors import Projectionist
from engine import MONEY

CURRENCIES = ("USD", "EUR", "CZK")
LOG_FILE = "eventsourcing-bank.db"
MAPPING_FILE = "topics.json"
MODELS_FILE = "models.db"


class Wallet(Aggregate):
    """One owner's money in one currency; every change records the balance
    after it, as the write side's authority."""

    @event("Opened")
    def __init__(self, owner: str, currency: str) -> None:
        self.owner = owner
        self.currency = currency
        self.label = ""
        self.balance = Decimal(0)
        self.credits = Decimal(0)
        self.debits = Decimal(0)
        self.transfers = 0

    def credit(self, amount: Decimal) -> None:
        after = MONEY.add(self.balance, amount)
        self._credited(self.owner, self.currency, amount, after)

    def debit(self, amount: Decimal) -> None:
        after = MONEY.subtract(self.balance, amount)
        self._debited(self.owner, self.currency, amount, after)

    @event("Credited")
    def _credited(
        self, owner: str, currency: str, amount: Decimal, balance: Decimal
    ) -> None:
        self.balance = balance
        self.credits = MONEY.add(self.credits, amount)
        self.transfers += 1

    @event("Debited")
    def _debited(
        self, owner: str, currency: str, amount: Decimal, balance: Decimal
    ) -> None:
        self.balance = balance
        self.debits = MONEY.add(self.debits, amount)
        self.transfers += 1

    @event("Relabelled")
    def relabel(self, label: str) -> None:
        self.label = label


class Bank(Application[UUID]):
    """The team's application; its recorder writes the log."""


def mapping() -> dict[str, dict[str, str]]:
    """Credited and Debited become our wallet events; their ``owner`` is our
    ``user_id`` and their ``balance`` our ``new_balance``."""
    return {
        "topics": {
            get_topic(Wallet.Credited): "WalletCredited",
            get_topic(Wallet.Debited): "WalletDeducted",
        },
        "fields": {"owner": "user_id", "balance": "new_balance"},
    }


def open_bank(path: Path) -> Bank:
    """The application over its SQLite log at ``path``."""
    return Bank(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    )


def write_log(path: Path, wallets: int, operations: int) -> list[UUID]:
    """Run the application: open ``wallets`` wallets, then make
    ``operations`` random credits, debits and relabellings; return the
    wallets' ids."""
    app = open_bank(path)
    chance = random.Random(7)
    kinds = len(CURRENCIES)
    opened = [
        Wallet(f"user-{i // kinds:03d}", CURRENCIES[i % kinds]) for i in range(wallets)
    ]
    app.save(*opened)
    for start in range(0, operations, 50):
        touched = {}
        for _ in range(start, min(start + 50, operations)):
            wallet = chance.choice(opened)
            _operate(wallet, chance)
            touched[wallet.id] = wallet
        app.save(*touched.values())
    app.close()
    return [wallet.id for wallet in opened]


def reload(path: Path, ids: list[UUID]) -> list[Wallet]:
    """Every wallet as the application itself rebuilds it from its log."""
    app = open_bank(path)
    try:
        return [app.repository.get(wallet_id) for wallet_id in ids]
    finally:
        app.close()


def _operate(wallet: Wallet, chance: random.Random) -> None:
    amount = Decimal(chance.randint(1, 500_000)).scaleb(-2)
    roll = chance.random()
    if roll < 0.55:
        wallet.credit(amount)
    elif roll < 0.9:
        wallet.debit(amount)
    else:
        wallet.relabel(f"label-{chance.randint(1, 99)}")


def check(engine: Projectionist, wallets: list[Wallet]) -> list[str]:
    """One message per wallet whose read models differ from its aggregate."""
    problems = []
    for wallet in wallets:
        if not wallet.transfers:
            continue
        balance = engine.get_balance(wallet.owner, wallet.currency)
        summary = engine.get_wallet_summary(wallet.owner, wallet.currency)
        found = (
            balance.balance,
            summary.total_credits,
            summary.total_debits,
            summary.transaction_count,
        )
        wanted = (wallet.balance, wallet.credits, wallet.debits, wallet.transfers)
        if found != wanted:
            problems.append(
                f"{wallet.owner} {wallet.currency}: models {found}, aggregate {wanted}"
            )
    return problems


def run(folder: Path, wallets: int, operations: int) -> int:
    """Write, project and check; returns the number of wallets that differ."""
    log_path, mapping_path = folder / LOG_FILE, folder / MAPPING_FILE
    for path in (log_path, mapping_path, folder / MODELS_FILE):
        if path.exists():
            raise SystemExit(f"{path} exists already; give an empty --dir")
    ids = write_log(log_path, wallets, operations)
    mapping_path.write_text(json.dumps(mapping(), indent=2))
    url = f"eventsourcing+sqlite:///{log_path}?topics={quote(str(mapping_path))}"
    print(f"eventsourcing log: {log_path} ({len(ids)} wallets)")
    print(f"event store URL: {url}")
    engine = Projectionist(url, f"sqlite:///{folder / MODELS_FILE}", shards=2)
    status = engine.run_until_caught_up()
    aggregates = reload(log_path, ids)
    mapped = sum(wallet.transfers for wallet in aggregates)
    print(
        f"projected up to notification {status['head']} with 2 shards: "
        f"{mapped} credits and debits, {status['head'] - mapped} unmapped "
        "(opened, relabelled) that change no model"
    )
    problems = check(engine, aggregates)
    for problem in problems:
        print(problem)
    for currency in CURRENCIES:
        mine = [w.balance for w in aggregates if w.currency == currency]
        print(
            f"{currency}: {len(mine)} wallets, balances sum to {sum(mine, Decimal(0))}"
        )
    checked = sum(1 for wallet in aggregates if wallet.transfers)
    print(
        f"{checked - len(problems)} of {checked} wallets match their aggregate's "
        "balance, credits, debits and transfer count"
    )
    return len(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to write (default: a temp dir)")
    parser.add_argument("--wallets", type=int, default=40)
    parser.add_argument("--operations", type=int, default=2_000)
    args = parser.parse_args(argv)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        return 1 if run(args.dir.resolve(), args.wallets, args.operations) else 0
    with tempfile.TemporaryDirectory(prefix="projectionist-es-") as made:
        return 1 if run(Path(made), args.wallets, args.operations) else 0


if __name__ == "__main__":
    # Run from the module's own name, so the topics the log records name
    # ``examples.eventsourcing_log`` rather than ``__main__``.
    from examples.eventsourcing_log import main as main_by_name

    sys.exit(main_by_name())
