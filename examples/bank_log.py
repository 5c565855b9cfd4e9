"""A real bank's transaction log, projected and checked against the bank.

Reads the PKDD'99 Czech bank ``trans.asc``, turns each transaction into a
WalletCredited or WalletDeducted event (the account is the user, CZK, the
bank's printed balance as ``new_balance``), imports them, runs the engine
with 4 shards on Redis, and checks every account:

* its Balance against the bank's last printed balance;
* its WalletSummary against the sums of its credits and debits and their
  count.

Records that are not valid are reported with their line number; the rest is
still checked. Usage::

    python -m examples.bank_log ../shared/data/czech-bank/trans.asc \\
        [--redis redis://127.0.0.1:6379/0] [--shards 4]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from actors import Projectionist
from engine import MONEY, Event, InvalidEventError, validate_event

CREDIT_TYPES = {"PRIJEM"}
DEBIT_TYPES = {"VYDAJ", "VYBER"}


@dataclass
class Account:
    """What the bank's own log says about one account."""

    last_balance: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)
    debits: Decimal = Decimal(0)
    count: int = 0


@dataclass
class BankLog:
    events: list[Event] = field(default_factory=list)
    accounts: dict[str, Account] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)


def read_bank_log(path: Path) -> BankLog:
    """Every valid record as an event, the bank's figures per account, and
    one message per invalid record."""
    log = BankLog()
    with path.open(encoding="utf-8", newline="") as file:
        rows = csv.reader(file, delimiter=";", quotechar='"')
        header = next(rows)
        for row in rows:
            line = rows.line_num
            try:
                event = _to_event(_record(header, row))
            except (ValueError, InvalidEventError) as error:
                log.invalid.append(f"{path} line {line}: {error}")
                continue
            log.events.append(event)
            _count(log.accounts, event)
    return log


def _record(header: list[str], row: list[str]) -> dict[str, str]:
    if len(row) != len(header):
        raise ValueError(f"has {len(row)} fields, expected {len(header)}")
    return dict(zip(header, row, strict=True))


def _to_event(record: dict[str, str]) -> Event:
    kind = record["type"]
    if kind in CREDIT_TYPES:
        event_type = "WalletCredited"
    elif kind in DEBIT_TYPES:
        event_type = "WalletDeducted"
    else:
        raise ValueError(f"unknown transaction type {kind!r}")
    date = record["date"]
    return validate_event(
        {
            "event_id": f"trans-{record['trans_id']}",
            "event_type": event_type,
            "created_at": f"19{date[0:2]}-{date[2:4]}-{date[4:6]}",
            "data": {
                "user_id": record["account_id"],
                "currency": "CZK",
                "amount": record["amount"],
                "new_balance": record["balance"],
            },
        }
    )


def _count(accounts: dict[str, Account], event: Event) -> None:
    data = event.data
    account = accounts.setdefault(data["user_id"], Account())
    account.last_balance = data["new_balance"]
    account.count += 1
    if event.event_type == "WalletCredited":
        account.credits = MONEY.add(account.credits, data["amount"])
    else:
        account.debits = MONEY.add(account.debits, data["amount"])


def check(engine: Projectionist, accounts: dict[str, Account]) -> list[str]:
    """One message per account whose read models differ from the bank."""
    problems = []
    for user, bank in sorted(accounts.items()):
        balance = engine.get_balance(user, "CZK")
        summary = engine.get_wallet_summary(user, "CZK")
        found = (
            balance.balance,
            summary.current_balance,
            summary.total_credits,
            summary.total_debits,
            summary.transaction_count,
        )
        wanted = (
            bank.last_balance,
            bank.last_balance,
            bank.credits,
            bank.debits,
            bank.count,
        )
        if found != wanted:
            problems.append(f"account {user}: models {found}, bank {wanted}")
    return problems


def run(path: Path, redis_url: str, shards: int, folder: Path) -> int:
    """Import, project and check; returns the number of accounts that differ."""
    log = read_bank_log(path)
    for message in log.invalid:
        print(f"invalid record: {message}")
    separator = "&" if "?" in redis_url else "?"
    store = f"{redis_url}{separator}prefix=bank-{uuid.uuid4().hex[:8]}"
    engine = Projectionist(
        f"sqlite:///{folder / 'bank-events.db'}", store, shards=shards
    )
    imported = engine.append(log.events)
    print(f"imported {imported.count} transactions of {len(log.accounts)} accounts")
    status = engine.run_until_caught_up()
    print(f"projected up to sequence number {status['head']} with {shards} shards")
    try:
        problems = check(engine, log.accounts)
    finally:
        engine.snapshots.clear()
        engine.stop()
    for problem in problems:
        print(problem)
    matching = len(log.accounts) - len(problems)
    print(f"{matching} of {len(log.accounts)} accounts match the bank's own figures")
    return len(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="the bank's trans.asc")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="projectionist-bank-") as made:
        differing = run(args.path, args.redis, args.shards, Path(made))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
