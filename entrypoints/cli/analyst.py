"""`eventmart analyst`: rebuild read models, export, replay, time travel; train and evaluate
the recommender; train, run and evaluate the review feedback classifier."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from entrypoints.cli import recs
from entrypoints.cli.shared import console, event_topics, progress_bar
from eventmart.settings import get_settings
from eventmart.wiring import field_cipher

app = typer.Typer(
    help="For analysts: rebuild read models, export, replay, time travel; train and evaluate "
    "the recommender; train, run and evaluate the review feedback classifier.",
    no_args_is_help=True,
)


@app.command("rebuild")
def analyst_rebuild(
    model: Annotated[str, typer.Argument(help="users, catalog, orders (or the group name).")],
) -> None:
    """Rebuild a read model from offset zero into shadow tables, then swap it in atomically."""
    from eventmart.groups import database_of
    from projections.rebuild import find_model, rebuild

    try:
        read_model = find_model(model)
    except KeyError as error:
        console.print(f"[red]{error.args[0]}[/]")
        raise typer.Exit(2) from error
    settings = get_settings()
    with progress_bar() as progress:
        task = progress.add_task(f"rebuilding {read_model.group}", total=None)
        job = asyncio.run(
            rebuild(
                read_model,
                database_of(read_model.group, settings),
                settings.bootstrap_servers,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                cipher=field_cipher(settings) if read_model.personal else None,
            )
        )
    console.print(
        f"swapped in {read_model.group}: {job.read:,} events read, {job.applied:,} applied, "
        f"{job.malformed} malformed skipped, {job.rate:,.0f} events/s"
    )
    console.print(
        "phases: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in job.phases.items())
    )


@app.command("export")
def analyst_export(
    out: Annotated[Path, typer.Option(help="Directory for one file per topic.")] = Path("exports"),
    topics: Annotated[
        str | None, typer.Option(help="Comma-separated; default every *.events topic.")
    ] = None,
    types: Annotated[
        str | None, typer.Option(help="Comma-separated event types; default all.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="ISO time, inclusive (occurred_at).")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time, exclusive (occurred_at).")] = None,
    output_format: Annotated[str, typer.Option("--format", help="parquet or jsonl.")] = "parquet",
    redact_pii: Annotated[
        bool,
        typer.Option(
            "--redact-pii/--no-redact-pii",
            help="Redact personal data (e-mails, names, addresses but their country).",
        ),
    ] = True,
) -> None:
    """Export the event log to Parquet or JSON Lines (envelope columns, payload as JSON).
    Personal data is redacted unless --no-redact-pii; payment tokens are never on the bus."""
    from eventmart.export import EventFilter, export_events, parse_time

    chosen = frozenset(t.strip() for t in types.split(",") if t.strip()) if types else frozenset()
    event_filter = EventFilter(chosen, parse_time(since), parse_time(until))
    settings = get_settings()
    with progress_bar() as progress:
        task = progress.add_task("exporting", total=None)
        result = asyncio.run(
            export_events(
                settings.bootstrap_servers,
                event_topics(topics),
                out,
                event_filter=event_filter,
                fmt=output_format,
                redact_pii=redact_pii,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                cipher=None if redact_pii else field_cipher(settings),
            )
        )
    console.print(
        f"{result.written:,} of {result.read:,} events written "
        f"({result.malformed} malformed skipped"
        f"{', personal data redacted' if redact_pii else ', personal data included'}): "
        f"{', '.join(map(str, result.paths))}"
    )


@app.command("replay")
def analyst_replay(
    group: Annotated[str, typer.Option(help="A NEW consumer group id (live groups are refused).")],
    topics: Annotated[
        str | None, typer.Option(help="Comma-separated; default every *.events topic.")
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option(help="Start at offset zero, not where the group left off.")
    ] = False,
) -> None:
    """Replay topics into a new consumer group and count events by type."""
    from rich.table import Table

    from entrypoints.replay import LiveGroup, replay

    settings = get_settings()
    with progress_bar() as progress:
        task = progress.add_task(f"replaying into {group}", total=None)
        try:
            result = asyncio.run(
                replay(
                    settings.bootstrap_servers,
                    group,
                    event_topics(topics),
                    from_beginning=from_beginning,
                    on_progress=lambda done, total, _: progress.update(
                        task, completed=done, total=total
                    ),
                )
            )
        except LiveGroup as error:
            console.print(f"[red]{error}[/]")
            raise typer.Exit(2) from error
    table = Table("event type", "count")
    for event_type, count in sorted(result.counts.items()):
        table.add_row(event_type, f"{count:,}")
    Console().print(table)
    console.print(
        f"{result.read:,} events, {result.malformed} malformed; offsets committed for {group}"
    )


@app.command("as-of")
def analyst_as_of(
    kind: Annotated[str, typer.Argument(help="order, stock (by product id) or user.")],
    known_id: Annotated[str, typer.Argument(metavar="ID")],
    at: Annotated[str, typer.Option(help="ISO time; without a zone, UTC.")],
) -> None:
    """The state of an order, a product's stock or a user as of a time, from the event store."""
    from uuid import UUID

    from entrypoints.timetravel import KINDS, NotYetExisting, application_for, as_of
    from eventmart.export import parse_time

    if kind not in KINDS:
        console.print(f"[red]kind must be one of {', '.join(KINDS)}[/]")
        raise typer.Exit(2)
    moment = parse_time(at)
    assert moment is not None
    try:
        state = as_of(application_for(kind, get_settings()), kind, UUID(known_id), moment)
    except NotYetExisting as error:
        console.print(f"[yellow]{error}[/]")
        raise typer.Exit(1) from error
    print(json.dumps(state, indent=2, default=str))


@app.command("eval-recs")
def analyst_eval_recs(
    source: Annotated[str, typer.Option(help=recs.SOURCE_HELP)],
    path: Annotated[Path | None, typer.Argument(help=recs.PATH_HELP)] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {model: {metric: value}} as one JSON object.")
    ] = False,
    tune: Annotated[
        bool,
        typer.Option(
            help="First choose every model's hyperparameters on a validation split carved "
            "from the training part (minutes); default: the documented choices."
        ),
    ] = False,
    test_share: Annotated[
        float, typer.Option(min=0.05, max=0.5, help="The last share of interactions by time.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="LightFM's random seed.")] = 0,
) -> None:
    """Time-split offline evaluation: the LightFM hybrid, LightFM without features, popularity
    and item-kNN, all trained on the past, scored on the last 20% of interactions by time
    (precision, recall, NDCG, MAP at 10; catalogue coverage)."""
    from eventmart.ml.evaluation import ModelChoices, evaluate, time_split
    from eventmart.ml.tuning import tune as tune_choices

    interactions, items, _ = recs.load_source(source, path)
    recs.describe_input(interactions, items)
    try:
        split = time_split(interactions, items, test_share)
        choices = ModelChoices()
        if tune:
            console.print("tuning on a validation split of the training part…")
            choices = tune_choices(split.train, split.items, on_trial=recs.trial_printer()).choices
            console.print(f"chosen: {choices}", highlight=False)
        with console.status("training") as status:
            results = evaluate(
                split,
                choices=choices,
                seed=seed,
                on_model=lambda name: status.update(f"training and scoring {name}…"),
            )
    except ValueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from error
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        recs.show_evaluation(results, split.figures, split.cutoff)


@app.command("train-recs")
def analyst_train_recs(
    source: Annotated[str, typer.Option(help=recs.SOURCE_HELP)] = "log",
    path: Annotated[Path | None, typer.Argument(help=recs.PATH_HELP)] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Models directory; default EVENTMART_RECOMMENDER_MODELS_DIR."),
    ] = None,
    seed: Annotated[int, typer.Option(help="LightFM's random seed.")] = 0,
    threads: Annotated[
        int, typer.Option(min=1, help="More is faster, but only 1 gives the same model twice.")
    ] = 1,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Ask the running recommender worker to train from scratch on the whole log "
            "at its next tick (in its own process, giving way to the sagas), and return.",
        ),
    ] = False,
) -> None:
    """Train the LightFM hybrid once on everything the source holds and save its serving
    model as a new version (the folder's LATEST then names it), with the state the
    recommender worker's incremental updates go on from."""
    from eventmart.ml import store
    from eventmart.ml.incremental import IncrementalModel
    from eventmart.ml.recommender import HybridParams, train

    directory = out or get_settings().models_dir
    if full:
        request = store.request_full_retrain(directory)
        console.print(f"full training requested ({request}); the recommender worker runs it")
        return
    interactions, items, seen = recs.load_source(source, path)
    recs.describe_input(interactions, items)
    with recs.epoch_progress() as progress:
        task = progress.add_task("training", total=HybridParams().epochs)
        try:
            trained = train(
                interactions,
                items,
                seed=seed,
                seen=seen,
                threads=threads,
                on_epoch=lambda done, total: progress.update(task, completed=done, total=total),
            )
        except ValueError as error:
            console.print(f"[red]{error}[/]")
            raise typer.Exit(1) from error
    folder = store.save(trained.to_serving(), directory)
    if seen:  # from the log: the worker's updates go on from here
        store.save_state(IncrementalModel.from_trained(trained), directory)
    console.print(f"model {trained.version} trained at {trained.trained_at:%Y-%m-%d %H:%M:%S}Z")
    console.print(", ".join(f"{count:,} {name}" for name, count in trained.counts.items()))
    console.print(f"saved to {folder} (LATEST)")


@app.command("train-classifier")
def analyst_train_classifier(
    out: Annotated[
        Path | None,
        typer.Option(help="Also write the final model here (it always goes to the cache)."),
    ] = None,
    toolkits: Annotated[
        bool, typer.Option(help="Also score the VADER/snownlp baseline (slower).")
    ] = True,
) -> None:
    """Rebuild the feedback classifier from the repository's labelled reviews.

    Trains on the training split and prints figures beside the baselines (majority
    class, lexicon alone, VADER/snownlp) on the held-out split and on the independently
    written half (in no model), then trains the model that is used
    (on every shipped example) and stores it in the cache, where `classify` and the
    workers load it. Same data and code, same version and same bytes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from entrypoints.cli.classifier import (
        aspect_table,
        confusion_table,
        figures_table,
        wide_console,
    )
    from eventmart.ml.feedback import default_cache_dir, shipped_examples, train
    from eventmart.ml.feedback.report import held_out_report

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("training", total=5 if toolkits else 4)

        def step(description: str) -> None:
            progress.update(task, description=description, advance=1)

        report = held_out_report(with_toolkits=toolkits, on_step=step)
        step("training the final model on every shipped example")
        final = train(shipped_examples("all"))
        progress.update(task, description="done", advance=1)
    path = default_cache_dir() / f"{final.version}.json"
    final.save(path)
    if out is not None:
        final.save(out)
    figures = report.figures
    title = f"held-out split: {report.held_out_count} reviews (trained on {report.train_count})"
    out_console = wide_console()
    out_console.print(figures_table(title, figures))
    out_console.print(aspect_table(figures["model"]))
    out_console.print(confusion_table(figures["model"]))
    title = f"independently written half: {report.outside_count} reviews (never trained on)"
    out_console.print(figures_table(title, report.outside))
    out_console.print(aspect_table(report.outside["model"]))
    out_console.print(confusion_table(report.outside["model"]))
    title = f"fresh set, another hand: {report.fresh_count} reviews (never trained on)"
    out_console.print(figures_table(title, report.fresh))
    out_console.print(confusion_table(report.fresh["model"]))
    console.print(f"model [bold]{final.version}[/] written to {path}")


@app.command("classify")
def analyst_classify(
    source: Annotated[
        str, typer.Argument(metavar="[FILE|-]", help="JSON Lines with a `text` field; - is stdin.")
    ] = "-",
    evaluate_labels: Annotated[
        bool,
        typer.Option(
            "--eval",
            help="The lines carry `aspects` and `sentiment` labels (and optionally `lang`): "
            "print precision/recall/F1 per aspect, macro-F1, sentiment accuracy and "
            "macro-F1, per language and overall, and the confusion matrix.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --eval: print the figures as one JSON object.")
    ] = False,
    model_path: Annotated[
        Path | None,
        typer.Option(
            "--model", help="A saved model; default: the shipped one (built on first use)."
        ),
    ] = None,
) -> None:
    """Classify review texts: aspects (quality, shipping, price, service) and sentiment.

    Reads JSON Lines and writes each line back to stdout with `lang` (zh or en),
    `aspects` and `sentiment` added; other fields are kept. With --eval, scores the
    model against the labels the lines already carry instead."""
    from entrypoints.cli.classifier import (
        BadInput,
        classify_stream,
        open_source,
        print_report,
        wide_console,
    )
    from eventmart.ml.feedback import FeedbackModel, InvalidExample, load_default, parse_examples
    from eventmart.ml.feedback.report import score

    if as_json and not evaluate_labels:
        console.print("[red]--json goes with --eval[/]")
        raise typer.Exit(2)
    if source != "-" and not Path(source).is_file():
        console.print(f"[red]cannot read {source}: no such file[/]")
        raise typer.Exit(2)
    if model_path is not None and not model_path.is_file():
        console.print(f"[red]no model at {model_path}[/]")
        raise typer.Exit(2)
    with console.status("loading the feedback model (built from the repository on first use)"):
        model = FeedbackModel.load(model_path) if model_path else load_default()
    try:
        with open_source(source) as lines:
            if not evaluate_labels:
                classify_stream(model, lines, sys.stdout)
                return
            examples = parse_examples(lines)
    except OSError as error:
        console.print(f"[red]cannot read {source}: {error.strerror}[/]")
        raise typer.Exit(2) from error
    except (BadInput, InvalidExample, ValueError) as error:
        console.print(f"[red]{source}: {error}[/]")
        raise typer.Exit(2) from error
    if not examples:
        console.print(f"[red]{source}: no labelled lines[/]")
        raise typer.Exit(2)
    report = {"model": model.version, **score(model, examples)}
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        title = f"{len(examples)} labelled reviews, model {model.version}"
        print_report(wide_console(), report, title)


@app.command("reclassify-reviews")
def analyst_reclassify_reviews(
    model_path: Annotated[
        Path | None,
        typer.Option(
            "--model", help="A saved model; default: the shipped one (built on first use)."
        ),
    ] = None,
) -> None:
    """Read every review again with a model version that has not read it yet: each new
    reading is stored as a `review.classified` event and replaces the labels the listings
    and the feedback show. Reviews this version has read already are left alone."""
    from uuid import UUID

    import psycopg

    from domain.reviews import Reviews
    from eventmart.groups import database_of
    from eventmart.ml.feedback import FeedbackModel, load_default
    from eventmart.wiring import build_application
    from workers.review_classifier import reclassify

    if model_path is not None and not model_path.is_file():
        console.print(f"[red]no model at {model_path}[/]")
        raise typer.Exit(2)
    settings = get_settings()
    with console.status("loading the feedback model (built from the repository on first use)"):
        model = FeedbackModel.load(model_path) if model_path else load_default()
    with psycopg.connect(database_of("reviews-projection", settings), autocommit=True) as conn:
        review_ids = [
            UUID(str(row[0]))
            for row in conn.execute(
                "SELECT review_id FROM reviews_view WHERE status <> 'withdrawn' "
                "AND model_version IS DISTINCT FROM %s ORDER BY review_id",
                (model.version,),
            )
        ]
    reviews: Reviews = build_application(Reviews, settings, pool_size=1)
    try:
        stored = reclassify(reviews, review_ids, model)
    finally:
        reviews.close()
    console.print(
        f"{model.version}: {stored:,} of {len(review_ids):,} reviews read again "
        "(review.classified events stored)"
    )
