"""`eventmart demo …`: demo data beyond what `eventmart up` seeds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from entrypoints.cli.shared import console, progress_bar
from eventmart.settings import get_settings

app = typer.Typer(help="Demo data for a running stack.", no_args_is_help=True)


@app.command("import-online-retail")
def import_online_retail(
    path: Annotated[Path, typer.Argument(help="The Online Retail CSV (gzipped or not).")],
    rate: Annotated[
        float,
        typer.Option(min=0.0001, help="Units of the deployment's currency per pound sterling."),
    ] = 9.0,
    invoices: Annotated[
        int | None, typer.Option(min=1, help="Import only the first N invoices.")
    ] = None,
) -> None:
    """Turn the invoices into products, customers and orders through the domain
    applications (the saga then runs the orders). Re-running stores nothing twice."""
    from api.security import PasswordHasher
    from entrypoints.demo_import import PASSWORD, SELLER_EMAIL, OnlineRetailImport, read_invoices
    from eventmart.database import make_pool
    from eventmart.payment_intents import PostgresPaymentIntents
    from eventmart.wiring import build_applications

    if not path.exists():
        console.print(f"[red]{path} does not exist[/]")
        raise typer.Exit(2)
    settings = get_settings()
    try:
        lines = read_invoices(path, invoices)
    except ValueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    applications = build_applications(settings)
    pool = make_pool(settings.context_dsn("payments"), max_size=2)
    try:
        importer = OnlineRetailImport(
            users=applications.users,
            catalog=applications.catalog,
            inventory=applications.inventory,
            orders=applications.orders,
            intents=PostgresPaymentIntents(pool),
            password_hash=PasswordHasher(settings.bcrypt_rounds).hash(PASSWORD),
            currency=settings.currency,
            rate=rate,
            payment_timeout=timedelta(seconds=settings.payment_timeout_seconds),
        )
        with progress_bar() as progress:
            tasks = {
                phase: progress.add_task(phase, total=None)
                for phase in ("products", "customers", "orders")
            }
            result = importer.run(
                lines,
                lambda phase, done, total: progress.update(
                    tasks[phase], completed=done, total=total
                ),
            )
    finally:
        pool.close()
        for application in applications.all():
            application.close()
    console.print(
        f"{result.products:,} products, {result.customers:,} customers, {result.orders:,} "
        f"orders ({result.orders_new:,} new, {result.lines:,} lines); the seller is "
        f"{SELLER_EMAIL}, customers customer-<CustomerID>@online-retail.demo, password "
        f"{PASSWORD}. The saga workers run the new orders."
    )
