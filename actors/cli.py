"""The ``projectionist`` command line: the composition root."""

from __future__ import annotations

import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from tqdm import tqdm

from engine import (
    DEFAULT_CURRENCIES,
    InvalidEventError,
    JsonLinesReader,
    ModelNotFound,
    ProjectionistError,
    Settings,
    event_to_json,
    generate_events,
    load_settings,
    parked,
    release_user,
)
from stores import open_event_store

from ._bench import run_bench
from ._demo import run_demo
from ._live_bench import run_live_bench
from ._output import as_json, as_text
from ._service import Projectionist

logger = logging.getLogger(__name__)

QUERY_KEYS = {"balance": 2, "summary": 2, "payments": 1}
CURRENCY_COUNT = click.IntRange(1, len(DEFAULT_CURRENCIES))


@click.group()
@click.option("--event-store", envvar="EVENT_STORE_URL", help="Event store URL.")
@click.option("--store", envvar="READ_MODEL_STORE_URL", help="Snapshot store URL.")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Log lifecycle steps.")
@click.pass_context
def cli(
    ctx: click.Context,
    event_store: str | None,
    store: str | None,
    debug: bool,
    verbose: bool,
) -> None:
    """Projectionist: read models from an ordered log of payment events."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"event_store_url": event_store, "store_url": store, "debug": debug}


def store_options(command: Any) -> Any:
    """``--event-store`` and ``--store`` after the command name too."""

    def remember(name: str) -> Any:
        def callback(ctx: click.Context, _: Any, value: str | None) -> None:
            if value is not None:
                ctx.ensure_object(dict)[name] = value

        return callback

    command = click.option(
        "--store",
        help="Snapshot store URL.",
        expose_value=False,
        callback=remember("store_url"),
    )(command)
    command = click.option(
        "--debug", is_flag=True, expose_value=False, help="Show tracebacks."
    )(command)
    return click.option(
        "--event-store",
        help="Event store URL.",
        expose_value=False,
        callback=remember("event_store_url"),
    )(command)


def _settings(ctx: click.Context, **flags: Any) -> Settings:
    given = {k: v for k, v in ctx.obj.items() if k != "debug"}
    return load_settings(**given, **flags)


def _bar(total: int | None, unit: str, description: str) -> tqdm:  # type: ignore[type-arg]
    return tqdm(
        total=total,
        unit=unit,
        desc=description,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
    )


@cli.command("import")
@store_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Import the valid lines only.")
@click.pass_context
def import_(ctx: click.Context, file: Path, skip_invalid: bool) -> None:
    """Append the events of a JSON Lines FILE: all or nothing."""
    store = open_event_store(_settings(ctx).event_store_url)
    try:
        with file.open("rb") as lines, _bar(None, "ev", "import") as bar:
            reader = JsonLinesReader(lines, str(file), store.head(), skip_invalid)
            result = _append(store, reader, bar)
    finally:
        store.close()
    for rejected in reader.rejected:
        click.echo(f"rejected: {rejected.error}", err=True)
    span = f" (sequence numbers {result.first}..{result.last})" if result.count else ""
    click.echo(f"imported {result.count} events{span}; rejected {len(reader.rejected)}")


def _append(store: Any, reader: JsonLinesReader, bar: Any) -> Any:
    def counted() -> Iterator[Any]:
        for event in reader:
            bar.update()
            yield event

    try:
        return store.append(counted())
    except InvalidEventError as error:
        if error.where.startswith(reader.source):
            raise
        place = f"{reader.source} line {reader.line}"
        if error.where:
            place = f"{place} ({error.where})"
        raise error.located(place) from None


@cli.command()
@store_options
@click.option("--until-caught-up", is_flag=True, help="Exit once the head is flushed.")
@click.option("--shards", type=int, help="Number of projection shards.")
@click.option("--batch-size", type=int, help="Events per dispatcher batch.")
@click.option("--projections", help="Extra projections, as module:attribute,...")
@click.pass_context
def run(
    ctx: click.Context,
    until_caught_up: bool,
    shards: int | None,
    batch_size: int | None,
    projections: str | None,
) -> None:
    """Catch up from the checkpoints, then apply new events as they come."""
    settings = _settings(
        ctx, shards=shards, batch_size=batch_size, projections=projections
    )
    engine = Projectionist(settings=settings)
    engine.connect()
    stopping = _on_signals(engine)
    with _bar(None, "ev", "catch-up") as bar:

        def progress(status: dict[str, Any]) -> None:
            bar.total = status["head"]
            bar.n = min(status["dispatched"], status["head"])
            bar.refresh()

        if until_caught_up:
            click.echo(_summary(engine.run_until_caught_up(progress)))
            return
        engine.start(live=True, progress=progress)
    try:
        if not stopping.is_set():
            head = engine.status()["head"]
            click.echo(f"caught up at {head}; following live (Ctrl-C stops)")
        while not stopping.is_set() and not engine.wait(0.5):
            pass
    finally:
        engine.stop()
    click.echo("stopped; everything applied is flushed")


def _on_signals(engine: Projectionist) -> threading.Event:
    # Installed once Ray is up, so these handlers are the ones that run:
    # Ctrl-C or SIGTERM ask the engine to flush what it applied and end.
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()
        engine.request_stop()

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, stop)
    return stopping


def _summary(status: dict[str, Any]) -> str:
    checkpoints = ", ".join(str(s["checkpoint"]) for s in status["shards"])
    summary = f"caught up: head {status['head']}, shard checkpoints {checkpoints}"
    holes = status.get("permanent_holes")
    if holes:
        summary += f"; {holes} missing sequence numbers passed as permanent holes"
    return summary


@cli.command()
@store_options
@click.argument("kind", type=click.Choice(sorted(QUERY_KEYS)))
@click.argument("key", nargs=-1, required=True)
@click.option("--json", "as_json_", is_flag=True, help="Print one JSON object.")
@click.pass_context
def query(ctx: click.Context, kind: str, key: tuple[str, ...], as_json_: bool) -> None:
    """One read model: balance USER CUR, summary USER CUR, or payments USER."""
    if len(key) != QUERY_KEYS[kind]:
        wanted = "USER CURRENCY" if QUERY_KEYS[kind] == 2 else "USER"
        raise click.UsageError(f"query {kind} takes {wanted}")
    engine = Projectionist(settings=_settings(ctx))
    try:
        model = engine.query(kind, *key)
        fields = engine.registry.get(kind).to_public(
            engine.registry.get(kind).to_state(model)
        )
    finally:
        engine.stop()
    click.echo(as_json(fields) if as_json_ else as_text(fields))


@cli.command()
@store_options
@click.argument("kind")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--projections", help="Extra projections, as module:attribute,...")
@click.pass_context
def export(
    ctx: click.Context, kind: str, output: Path | None, projections: str | None
) -> None:
    """All read models of KIND (balance, summary, payments) as JSON Lines."""
    engine = Projectionist(settings=_settings(ctx, projections=projections))
    try:
        rows = engine.export(kind)
    finally:
        engine.stop()
    text = "".join(as_json(state) + "\n" for _, state in rows)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"exported {len(rows)} {kind} read models to {output}", err=True)


@cli.command()
@store_options
@click.option("--json", "as_json_", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json_: bool) -> None:
    """Head sequence number, each shard's checkpoint, and the lag."""
    engine = Projectionist(settings=_settings(ctx))
    try:
        found = engine.status()
    finally:
        engine.stop()
    if as_json_:
        click.echo(as_json(found))
        return
    click.echo(f"head        {found['head']}")
    click.echo(f"lag events  {found['lag_events']}")
    if found.get("quarantined_users"):
        click.echo(
            f"quarantined users  {found['quarantined_users']} "
            "(see projectionist dead-letters list)"
        )
    for shard in found["shards"]:
        click.echo(
            f"shard {shard['shard']}/{shard['shard_count']}  "
            f"checkpoint {shard['checkpoint']}"
        )


@cli.command()
@store_options
@click.option("--events", type=click.IntRange(0), default=100_000, show_default=True)
@click.option("--users", type=click.IntRange(1), default=10_000, show_default=True)
@click.option(
    "--currencies", type=click.IntRange(1, len(DEFAULT_CURRENCIES)), default=3
)
@click.option("--seed", type=int, help="Repeat a workload exactly.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def generate(
    ctx: click.Context,
    events: int,
    users: int,
    currencies: int,
    seed: int | None,
    output: Path | None,
) -> None:
    """A synthetic payments workload, into the event store or a file."""
    workload = generate_events(events, users, DEFAULT_CURRENCIES[:currencies], seed)
    with _bar(events, "ev", "generate") as bar:
        counted = (bar.update() or event for event in workload)
        if output is not None:
            with output.open("w", encoding="utf-8") as out:
                for event in counted:
                    out.write(as_json(event_to_json(event)) + "\n")
            click.echo(f"wrote {events} events to {output}")
            return
        store = open_event_store(_settings(ctx).event_store_url)
        try:
            result = store.append(counted)
        finally:
            store.close()
    click.echo(f"generated {result.count} events ({result.first}..{result.last})")


@cli.command()
@store_options
@click.option("--events", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--users", type=click.IntRange(1), default=100_000, show_default=True)
@click.option(
    "--currencies", type=click.IntRange(1, len(DEFAULT_CURRENCIES)), default=3
)
@click.option("--shards", "shard_list", default="1,2,4", show_default=True)
@click.option("--batch-size", type=int, help="Events per dispatcher batch.")
@click.option("--json", "as_json_", is_flag=True, help="Print one JSON object.")
@click.option("--live", is_flag=True, help="Measure append-to-visible latency instead.")
@click.option("--rates", default="1000,10000", show_default=True)
@click.option("--seconds", type=click.FloatRange(0.1), default=10.0, show_default=True)
@click.pass_context
def bench(
    ctx: click.Context,
    events: int,
    users: int,
    currencies: int,
    shard_list: str,
    batch_size: int | None,
    as_json_: bool,
    live: bool,
    rates: str,
    seconds: float,
) -> None:
    """Time import and a full catch-up with each shard count (Redis store
    unless --store names another). With --live, run the engine live and
    append at each of --rates events/s for --seconds, printing how long
    events take to become visible (on a temporary SQLite log, or a table of
    its own in the PostgreSQL that --event-store names)."""
    settings = _settings(ctx, batch_size=batch_size)
    store_url = ctx.obj.get("store_url") or _redis_url(settings)
    if live:
        settings = settings.model_copy(update={"store_url": store_url})
        figures = run_live_bench(
            settings,
            _positive_list(rates, "--rates"),
            seconds,
            users,
            DEFAULT_CURRENCIES[:currencies],
        )
        _print_live(figures, as_json_)
        return
    counts = _shard_counts(shard_list)
    figures = run_bench(
        settings, events, users, DEFAULT_CURRENCIES[:currencies], counts, store_url
    )
    if as_json_:
        click.echo(as_json(figures))
        return
    imported = figures["import"]
    click.echo(f"import    {imported['events_per_second']:>10,} events/s")
    for run_ in figures["catch_up"]:
        click.echo(
            f"catch-up  {run_['events_per_second']:>10,} events/s  "
            f"({run_['shards']} shards, {run_['seconds']} s)"
        )


def _print_live(figures: dict[str, Any], as_json_: bool) -> None:
    if as_json_:
        click.echo(as_json(figures))
        return
    click.echo(f"{figures['event_store']} log, {figures['shards']} shards")
    for run_ in figures["runs"]:
        latency = run_["latency_ms"]
        missing = run_["never_visible"]
        click.echo(
            f"{run_['rate']:>7,} events/s (achieved {run_['achieved_rate']:,}): "
            f"append-to-visible p50 {latency['p50']} ms, p99 {latency['p99']} ms, "
            f"max {latency['max']} ms"
            + (f", {missing} never visible" if missing else "")
        )


@cli.group("dead-letters")
def dead_letters() -> None:
    """Events parked because a projection kept failing on them."""


@dead_letters.command("list")
@store_options
@click.option("--user", help="Only this user's dead letters.")
@click.option("--json", "as_json_", is_flag=True, help="Print JSON Lines.")
@click.pass_context
def dead_letters_list(ctx: click.Context, user: str | None, as_json_: bool) -> None:
    """Every parked event, in sequence order."""
    engine = Projectionist(settings=_settings(ctx))
    try:
        letters = parked([state for _, state in engine.export("dead_letters")], user)
    finally:
        engine.stop()
    for letter in letters:
        if as_json_:
            click.echo(as_json(letter))
            continue
        click.echo(
            f"{letter['sequence_number']}  user {letter['user_id']}  "
            f"{letter['event_type']}  {letter['reason']}"
        )
    if not as_json_:
        click.echo(f"{len(letters)} parked events", err=True)


@dead_letters.command("retry")
@store_options
@click.argument("user")
@click.pass_context
def dead_letters_retry(ctx: click.Context, user: str) -> None:
    """Replay USER's parked events in order and lift its quarantine. Stop
    the engine first: a running one is fenced out."""
    _release(ctx, user, replay=True)


@dead_letters.command("skip")
@store_options
@click.argument("user")
@click.pass_context
def dead_letters_skip(ctx: click.Context, user: str) -> None:
    """Mark USER's parked events skipped and lift its quarantine."""
    _release(ctx, user, replay=False)


def _release(ctx: click.Context, user: str, replay: bool) -> None:
    engine = Projectionist(settings=_settings(ctx))
    try:
        engine.open()
        done = release_user(engine.snapshots, engine.registry, user, replay)
    finally:
        engine.stop()
    verb = "replayed" if done.replayed else "skipped"
    click.echo(f"user {user}: {done.letters} parked events {verb}; quarantine lifted")


def _shard_counts(text: str) -> list[int]:
    return _positive_list(text, "--shards", "1,2,4")


def _positive_list(text: str, option: str, example: str = "1000,10000") -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise click.BadParameter(
            f"{text!r}: give positive whole numbers such as {example}",
            param_hint=option,
        )
    return values


def _redis_url(settings: Settings) -> str:
    return f"redis://{settings.redis_host}:{settings.redis_port}/{settings.redis_db}"


@cli.command()
@store_options
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def demo(ctx: click.Context, folder: Path | None) -> None:
    """Generate, project and check a small workload on embedded SQLite."""
    settings = _settings(ctx)
    with _folder(folder) as where:
        ok = run_demo(where, settings, click.echo)
    if not ok:
        _fail("demo: some read models differ from the sequential fold")
    click.echo("demo passed")


@contextmanager
def _folder(folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="projectionist-demo-") as made:
        yield Path(made)


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def main() -> None:
    """Entry point: one clear line per error, tracebacks only with --debug."""
    debug = "--debug" in sys.argv
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted")
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except ModelNotFound as error:
        _fail(str(error))
    except ProjectionistError as error:
        if debug:
            raise
        _fail(str(error))
    except Exception as error:
        if debug:
            raise
        _fail(f"{type(error).__name__}: {error} (run with --debug for details)")


if __name__ == "__main__":
    main()
