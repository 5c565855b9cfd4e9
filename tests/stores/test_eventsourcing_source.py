"""A log written by the eventsourcing library, read as an event store.

Logs are written by a real eventsourcing Application into a SQLite file and
into a PostgreSQL database of our own (created for the run, dropped after);
each PostgreSQL test uses an application, and so a table, of its own.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Notification,
    StoredEvent,
)
from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import Environment, get_topic
from psycopg import sql

from engine import (
    BALANCE,
    MONEY,
    WALLET_SUMMARY,
    ConfigurationError,
    Event,
    EventStoreError,
    InvalidEventError,
    encode_event,
    event_to_json,
    fold,
    payments_registry,
    route_of,
    validate_event,
)
from stores import open_event_store
from stores._eventsourcing import (
    TOPICS_ENVIRONMENT,
    UNMAPPED,
    EventsourcingEventStore,
    TopicMapping,
)


class Wallet(Aggregate):
    """A wallet of one user in one currency, as a team would write it."""

    @event("Opened")
    def __init__(self, user_id: str, currency: str) -> None:
        self.user_id = user_id
        self.currency = currency
        self.balance = Decimal(0)
        self.credits = Decimal(0)
        self.debits = Decimal(0)

    @event("Credited")
    def credit(self, user_id: str, currency: str, amount: Any) -> None:
        self.balance = MONEY.add(self.balance, amount)
        self.credits = MONEY.add(self.credits, amount)

    @event("Deducted")
    def deduct(self, user_id: str, currency: str, amount: Any) -> None:
        self.balance = MONEY.subtract(self.balance, amount)
        self.debits = MONEY.add(self.debits, amount)

    @event("Noted")
    def note(self, text: str) -> None:
        """An event type the mapping leaves out."""


class Sloppy(Aggregate):
    """Writes whatever it is given, floats included."""

    @event("Credited")
    def credit(self, user_id: str, currency: str, amount: Any) -> None:
        """No arithmetic: the state is only recorded."""


class Purse(Aggregate):
    """Names of its own: the mapping renames them, and routes by its id."""

    @event("Filled")
    def fill(self, coins: Decimal, cur: str) -> None:
        self.coins = coins


class Bank(Application[uuid.UUID]):
    """The application whose log is read."""


MAPPING = {
    "topics": {
        get_topic(Wallet.Credited): "WalletCredited",
        get_topic(Wallet.Deducted): "WalletDeducted",
    }
}


def write_mapping(folder: Path, mapping: object = None) -> Path:
    path = folder / f"topics-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(MAPPING if mapping is None else mapping))
    return path


# PostgreSQL: the ``postgres_url`` fixture (tests/conftest.py) gives a
# database of this run's own on the loopback server, dropped after it.


def postgres_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
    }


# A written log, and the store that reads it


@dataclass
class Log:
    """An application's log, the wallets it saved, and the store over it."""

    app: Bank
    url: str
    store: EventsourcingEventStore
    wallets: dict[str, Wallet]

    def notifications(self) -> list[Notification]:
        return list(self.app.recorder.select_notifications(1, 1_000))


def open_bank(kind: str, folder: Path, postgres: str | None) -> tuple[Bank, str]:
    """A fresh Bank (its own table on PostgreSQL) and the log's URL base."""
    if kind == "sqlite":
        path = folder / f"bank-{uuid.uuid4().hex[:8]}.db"
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        return Bank(env=env), f"eventsourcing+sqlite:///{path}"
    assert postgres is not None
    name = f"Bank{uuid.uuid4().hex[:8]}"
    app = type(name, (Bank,), {"name": name})(env=postgres_env(postgres))
    address = postgres.partition("://")[2]
    return app, f"eventsourcing+postgresql://{address}?app={name}"


def save_wallets(app: Bank) -> dict[str, Wallet]:
    usd = Wallet("u1", "USD")
    usd.credit("u1", "USD", Decimal("100.10"))
    usd.deduct("u1", "USD", Decimal("30.05"))
    usd.note("not a payment")
    eur = Wallet("u2", "EUR")
    eur.credit("u2", "EUR", Decimal("0.000000000000000001"))
    eur.credit("u2", "EUR", Decimal("12345678901234567890.5"))
    usd.credit("u1", "USD", Decimal("7"))
    app.save(usd, eur)
    return {"u1": usd, "u2": eur}


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    postgres = None
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres_url")
    app, base = open_bank(request.param, tmp_path, postgres)
    wallets = save_wallets(app)
    url = f"{base}{'&' if '?' in base else '?'}topics={write_mapping(tmp_path)}"
    store = open_event_store(url)
    assert isinstance(store, EventsourcingEventStore)
    yield Log(app, url, store, wallets)
    store.close()
    app.close()


@pytest.fixture
def sqlite_bank(tmp_path: Path) -> Iterator[tuple[Bank, str]]:
    app, base = open_bank("sqlite", tmp_path, None)
    yield app, base
    app.close()


# notifications become rows


def test_every_notification_becomes_one_row_numbered_by_its_id(log: Log) -> None:
    notifications = log.notifications()

    rows = log.store.read_after(0, 1_000)

    assert [row.sequence_number for row in rows] == [n.id for n in notifications]
    assert len(rows) == 8
    assert log.store.head() == notifications[-1].id


def test_mapped_topics_become_our_events_with_exact_decimals(log: Log) -> None:
    by_number = {n.id: n for n in log.notifications()}

    events = log.store.read_events_after(0, 1_000)

    credits = [e for e in events if e.event_type == "WalletCredited"]
    assert [e.data["amount"] for e in credits] == [
        Decimal("100.10"),
        Decimal("7"),
        Decimal("0.000000000000000001"),
        Decimal("12345678901234567890.5"),
    ]
    assert str(credits[0].data["amount"]) == "100.10"
    first = credits[0]
    notification = by_number[first.sequence_number]
    assert first.event_id == (
        f"{notification.originator_id}:{notification.originator_version}"
    )
    assert first.data == {
        "user_id": "u1",
        "currency": "USD",
        "amount": Decimal("100.10"),
    }
    written = log.app.repository.event_store.get(notification.originator_id)
    versions = {e.originator_version: e.timestamp for e in written}
    assert first.created_at == versions[notification.originator_version]
    assert first.created_at.tzinfo is UTC


def test_a_row_is_routed_by_its_user_and_carries_the_encoded_event(log: Log) -> None:
    rows = log.store.read_after(0, 1_000)
    events = log.store.read_events_after(0, 1_000)

    for row, read in zip(rows, events, strict=True):
        assert row.route == route_of(read.user_id)
        assert row.payload == encode_event(read)
    users = {e.user_id for e in events if e.event_type != UNMAPPED}
    assert users == {"u1", "u2"}


def test_unmapped_topics_become_rows_without_a_user_that_change_no_model(
    log: Log,
) -> None:
    events = log.store.read_events_after(0, 1_000)
    unmapped = [e for e in events if e.event_type == UNMAPPED]
    mapped = [e for e in events if e.event_type != UNMAPPED]

    topics = [e.data["topic"] for e in unmapped]
    assert sorted(topics) == sorted(
        [get_topic(Wallet.Opened), get_topic(Wallet.Opened), get_topic(Wallet.Noted)]
    )
    assert all(e.user_id is None for e in unmapped)
    registry = payments_registry()
    assert fold(registry, events).models == fold(registry, mapped).models
    assert validate_event(event_to_json(unmapped[0])) == unmapped[0]


def test_the_fold_over_the_log_gives_each_wallets_own_balance(log: Log) -> None:
    projector = fold(payments_registry(), log.store.read_events_after(0, 1_000))

    for user, wallet in log.wallets.items():
        stored = log.app.repository.get(wallet.id)
        key = (user, wallet.currency)
        balance = projector.models[BALANCE.name][key]
        summary = projector.models[WALLET_SUMMARY.name][key]
        assert balance.balance == stored.balance
        assert summary.total_credits == stored.credits
        assert summary.total_debits == stored.debits
    assert projector.models[BALANCE.name][("u2", "EUR")].balance == Decimal(
        "12345678901234567890.500000000000000001"
    )


def test_reads_page_by_notification_id(log: Log) -> None:
    numbers = [n.id for n in log.notifications()]

    assert [r.sequence_number for r in log.store.read_after(0, 2)] == numbers[:2]
    after = numbers[3]
    assert [r.sequence_number for r in log.store.read_after(after, 3)] == numbers[4:7]
    assert log.store.read_after(numbers[-1], 10) == []
    assert log.store.read_after(0, 0) == []


def test_append_is_refused_and_the_log_is_unchanged(log: Log) -> None:
    head = log.store.head()
    event = Event(0, "e-1", "WalletCredited", datetime.now(UTC), {"user_id": "u1"})

    with pytest.raises(EventStoreError, match="read-only"):
        log.store.append([event])

    assert log.store.head() == head


def test_gaps_may_fill_only_on_postgresql(log: Log) -> None:
    assert log.store.gaps_may_fill is log.url.startswith("eventsourcing+postgresql")


def test_writers_are_seen_open_only_while_a_transaction_locks_the_table(
    log: Log,
) -> None:
    assert log.store.open_writers() == []
    if not log.store.gaps_may_fill:
        return
    with psycopg.connect(log.url.partition("+")[2].split("?")[0]) as writer:
        table = sql.Identifier(f"{log.app.name.lower()}_events")
        writer.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table))

        (seen,) = log.store.open_writers()
        assert seen.open_for >= timedelta(0)
        assert seen.busy is False  # idle in its transaction
        writer.rollback()
    assert log.store.open_writers() == []


def test_an_append_after_listen_wakes_a_later_wait(log: Log) -> None:
    log.store.listen()
    assert log.store.wait_for_append(0.1) is False
    wallet = log.app.repository.get(log.wallets["u1"].id)
    wallet.credit("u1", "USD", Decimal("1"))
    log.app.save(wallet)

    assert log.store.wait_for_append(5.0) is True
    assert log.store.read_events_after(0, 1_000)[-1].data["amount"] == Decimal("1")


def test_a_wait_is_woken_by_an_append_from_another_thread(log: Log) -> None:
    log.store.listen()
    wallet = log.app.repository.get(log.wallets["u2"].id)
    wallet.credit("u2", "EUR", Decimal("2"))
    timer = threading.Timer(0.1, lambda: log.app.save(wallet))
    timer.start()
    started = time.monotonic()

    assert log.store.wait_for_append(10.0) is True
    assert time.monotonic() - started < 5.0
    timer.join()


# states that do not validate


@pytest.mark.parametrize(
    ("amount", "message"),
    [(Decimal("-5"), "greater than zero"), (1.5, "binary float")],
)
def test_a_state_that_does_not_validate_names_notification_topic_and_field(
    sqlite_bank: tuple[Bank, str], tmp_path: Path, amount: Any, message: str
) -> None:
    app, base = sqlite_bank
    sloppy = Sloppy()
    sloppy.credit("u1", "USD", Decimal("1.00"))
    sloppy.credit("u1", "USD", amount)
    app.save(sloppy)
    mapping = {"topics": {get_topic(Sloppy.Credited): "WalletCredited"}}
    store = open_event_store(f"{base}?topics={write_mapping(tmp_path, mapping)}")

    with pytest.raises(InvalidEventError) as raised:
        store.read_after(0, 10)

    error = raised.value
    assert error.field == "data.amount"
    assert message in error.reason
    assert "sequence number 3" in error.where
    assert repr(get_topic(Sloppy.Credited)) in str(error)
    assert len(store.read_after(0, 2)) == 2
    store.close()


def test_renamed_fields_and_the_aggregate_id_as_user(
    sqlite_bank: tuple[Bank, str], tmp_path: Path
) -> None:
    app, base = sqlite_bank
    purse = Purse()
    purse.fill(Decimal("3.50"), "GBP")
    app.save(purse)
    mapping = {
        "topics": {get_topic(Purse.Filled): "WalletCredited"},
        "fields": {"originator_id": "user_id", "coins": "amount", "cur": "currency"},
    }
    store = open_event_store(f"{base}?topics={write_mapping(tmp_path, mapping)}")

    [created, filled] = store.read_events_after(0, 10)

    assert created.event_type == UNMAPPED
    assert filled.data == {
        "user_id": str(purse.id),
        "currency": "GBP",
        "amount": Decimal("3.50"),
    }
    store.close()


def test_an_attribute_renamed_onto_one_present_is_refused(
    sqlite_bank: tuple[Bank, str], tmp_path: Path
) -> None:
    app, base = sqlite_bank
    wallet = Wallet("u1", "USD")
    wallet.credit("u1", "USD", Decimal("1"))
    app.save(wallet)
    mapping = {**MAPPING, "fields": {"originator_id": "user_id"}}
    store = open_event_store(f"{base}?topics={write_mapping(tmp_path, mapping)}")

    with pytest.raises(InvalidEventError, match="given twice") as raised:
        store.read_after(0, 10)

    assert raised.value.field == "data.user_id"
    store.close()


def test_compressed_states_are_read_with_the_compressor_option(
    tmp_path: Path,
) -> None:
    path = tmp_path / "zipped.db"
    app = Bank(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path),
            "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        }
    )
    save_wallets(app)
    app.close()
    topics = write_mapping(tmp_path)
    plain = open_event_store(f"eventsourcing+sqlite:///{path}?topics={topics}")
    zipped = open_event_store(
        f"eventsourcing+sqlite:///{path}?topics={topics}&compressor=zlib"
    )

    with pytest.raises(InvalidEventError, match="could not be decoded"):
        plain.read_after(0, 100)
    amounts = [e.data.get("amount") for e in zipped.read_events_after(0, 100)]
    assert Decimal("100.10") in amounts
    assert zipped.read_events_after(0, 1)[0].created_at.year >= 2024
    plain.close()
    zipped.close()


def test_an_unmapped_state_that_cannot_be_decoded_still_moves_the_position(
    tmp_path: Path,
) -> None:
    path = tmp_path / "zipped.db"
    app = Bank(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path),
            "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        }
    )
    app.save(Wallet("u1", "USD"))
    app.close()
    store = open_event_store(
        f"eventsourcing+sqlite:///{path}?topics={write_mapping(tmp_path)}"
    )

    [opened] = store.read_events_after(0, 10)

    assert opened.event_type == UNMAPPED
    assert opened.created_at == datetime(1970, 1, 1, tzinfo=UTC)
    store.close()


def test_text_originator_ids_are_read_with_the_originator_id_type_option(
    tmp_path: Path,
) -> None:
    path = tmp_path / "text-ids.db"
    env = {"SQLITE_DBNAME": str(path), "ORIGINATOR_ID_TYPE": "text"}
    recorder = SQLiteFactory(Environment(env=env)).application_recorder()
    transcoder = JSONTranscoder()
    transcoder.register(DatetimeAsISO())
    transcoder.register(DecimalAsStr())
    state = {
        "timestamp": datetime(2026, 1, 5, 10, 0, tzinfo=UTC),
        "user_id": "u1",
        "currency": "USD",
        "amount": Decimal("2.50"),
    }
    topic = get_topic(Wallet.Credited)
    recorder.insert_events([StoredEvent("acct-1", 1, topic, transcoder.encode(state))])
    topics = write_mapping(tmp_path)
    url = f"eventsourcing+sqlite:///{path}?topics={topics}"

    as_uuids = open_event_store(url)
    with pytest.raises(EventStoreError, match="originator_id_type=text"):
        as_uuids.read_after(0, 10)
    as_uuids.close()
    store = open_event_store(f"{url}&originator_id_type=text")
    [credited] = store.read_events_after(0, 10)

    assert credited.event_id == "acct-1:1"
    assert credited.created_at == state["timestamp"]
    assert credited.data["amount"] == Decimal("2.50")
    store.close()


# URLs and configuration


def test_a_relative_sqlite_url_and_the_mapping_from_the_environment(
    sqlite_bank: tuple[Bank, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, base = sqlite_bank
    app.save(Wallet("u1", "USD"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(TOPICS_ENVIRONMENT, str(write_mapping(tmp_path)))
    relative = Path(base.removeprefix("eventsourcing+sqlite:///")).name

    store = open_event_store(f"eventsourcing+sqlite:///{relative}")

    assert store.head() == 1
    store.close()


def test_a_topics_path_may_be_quoted_in_the_url(
    sqlite_bank: tuple[Bank, str], tmp_path: Path
) -> None:
    app, base = sqlite_bank
    app.save(Wallet("u1", "USD"))
    folder = tmp_path / "a b&c"
    folder.mkdir()
    topics = quote(str(write_mapping(folder)), safe="/")

    store = open_event_store(f"{base}?topics={topics}")

    assert store.head() == 1
    store.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("colour=red", "unknown option 'colour'"),
        ("app=Bank", "unknown option 'app'"),
        ("table=", "option 'table' is empty"),
        ("table=a&table=b", "given twice"),
        ("compressor=lzma", "compressor must be one of zlib"),
        ("originator_id_type=int", "originator_id_type must be one of"),
        ("table=missing_events", "table 'missing_events'"),
        ("table=x;drop", "plain SQL name"),
    ],
)
def test_bad_sqlite_options_are_configuration_errors(
    sqlite_bank: tuple[Bank, str], tmp_path: Path, options: str, message: str
) -> None:
    app, base = sqlite_bank
    app.save(Wallet("u1", "USD"))
    topics = write_mapping(tmp_path)

    with pytest.raises(ConfigurationError, match=message):
        open_event_store(f"{base}?topics={topics}&{options}")


def test_a_missing_log_file_is_named(tmp_path: Path) -> None:
    topics = write_mapping(tmp_path)

    with pytest.raises(ConfigurationError, match=r"nowhere\.db"):
        open_event_store(
            f"eventsourcing+sqlite:///{tmp_path}/nowhere.db?topics={topics}"
        )
    assert not (tmp_path / "nowhere.db").exists()


def test_no_mapping_at_all_says_how_to_give_one(
    sqlite_bank: tuple[Bank, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, base = sqlite_bank
    monkeypatch.delenv(TOPICS_ENVIRONMENT, raising=False)

    with pytest.raises(ConfigurationError, match=TOPICS_ENVIRONMENT):
        open_event_store(base)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "must be a JSON object"),
        ("{}", 'has no "topics"'),
        ('{"topics": {}, "extra": 1}', "unknown key 'extra'"),
        ('{"topics": []}', "topics must be an object"),
        ('{"topics": {"a:B": ""}}', "every event type must be a non-blank"),
        ('{"topics": {"a:B": 7}}', "every event type must be a non-blank"),
        ('{"topics": {}, "fields": {"x": "f", "y": "f"}}', "more than one"),
        ('{"topics": {}, "fields": {"timestamp": "at"}}', "always the event's"),
    ],
)
def test_a_bad_mapping_file_is_named_with_what_is_wrong(
    sqlite_bank: tuple[Bank, str], tmp_path: Path, content: str, message: str
) -> None:
    _, base = sqlite_bank
    path = tmp_path / "bad-topics.json"
    path.write_text(content)

    with pytest.raises(ConfigurationError, match=message) as raised:
        open_event_store(f"{base}?topics={path}")

    assert str(path) in str(raised.value)


def test_a_missing_mapping_file_is_named(
    sqlite_bank: tuple[Bank, str], tmp_path: Path
) -> None:
    _, base = sqlite_bank

    with pytest.raises(ConfigurationError, match=r"absent\.json"):
        open_event_store(f"{base}?topics={tmp_path}/absent.json")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("eventsourcing+mysql://h/db", "unknown eventsourcing log scheme"),
        ("eventsourcing+sqlite://host/x.db", "does not name a SQLite file"),
        ("eventsourcing+sqlite:///", "does not name a SQLite file"),
        ("eventsourcing+sqlite:///x.db#part", "no '#' part"),
        ("eventsourcing+postgresql://u@127.0.0.1:5432/", "does not name a database"),
        ("eventsourcing+postgresql://u@127.0.0.1:port/db", "not a valid URL"),
        ("eventsourcing+postgresql://u@127.0.0.1/db?colour=red", "unknown option"),
    ],
)
def test_malformed_urls_are_configuration_errors(
    tmp_path: Path, url: str, message: str
) -> None:
    topics = write_mapping(tmp_path)
    separator = "&" if "?" in url else "?"

    with pytest.raises(ConfigurationError, match=message):
        open_event_store(f"{url}{separator}topics={topics}")


def test_a_password_in_a_url_is_never_shown(tmp_path: Path) -> None:
    url = "eventsourcing+postgresql://app:s3cret@127.0.0.1:5432/db?colour=red"

    with pytest.raises(ConfigurationError, match="unknown option") as raised:
        open_event_store(url)

    assert "s3cret" not in str(raised.value)
    assert "app:***@127.0.0.1" in str(raised.value)


@pytest.mark.postgres
def test_a_postgresql_application_without_a_table_is_named(
    postgres_url: str, tmp_path: Path
) -> None:
    address = postgres_url.partition("://")[2]
    url = f"eventsourcing+postgresql://{address}?app=Nobody&topics=" + str(
        write_mapping(tmp_path)
    )

    with pytest.raises(ConfigurationError, match=r"no table public\.nobody_events"):
        open_event_store(url)


def test_an_unreachable_postgresql_server_is_an_event_store_error(
    free_loopback_port: int, tmp_path: Path
) -> None:
    topics = write_mapping(tmp_path)
    url = f"eventsourcing+postgresql://postgres@127.0.0.1:{free_loopback_port}/x"

    with pytest.raises(EventStoreError, match="cannot read the eventsourcing log"):
        open_event_store(f"{url}?app=Bank&topics={topics}")


@pytest.mark.postgres
def test_a_table_option_reads_that_table_in_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    app, base = open_bank("postgresql", tmp_path, postgres_url)
    app.save(Wallet("u1", "USD"))
    table = f"{app.name.lower()}_events"
    url = base.split("?")[0] + f"?table={table}&topics={write_mapping(tmp_path)}"

    store = open_event_store(url)

    assert store.head() == 1
    store.close()
    app.close()


def test_without_the_library_the_adapter_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "eventsourcing.persistence", None)
    monkeypatch.delitem(sys.modules, "stores._eventsourcing")

    with pytest.raises(ConfigurationError, match=r"projectionist\[eventsourcing\]"):
        open_event_store("eventsourcing+sqlite:///log.db?topics=t.json")
    with pytest.raises(ConfigurationError, match="install it with"):
        import stores._eventsourcing  # noqa: F401


def test_topic_mappings_can_be_built_in_python() -> None:
    mapping = TopicMapping({"bank:Wallet.Credited": "WalletCredited"})

    assert mapping.fields == {}
    with pytest.raises(ConfigurationError, match="non-blank"):
        TopicMapping({" ": "WalletCredited"})
