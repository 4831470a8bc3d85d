"""The Online Retail data set as EventMart history: its products, customers and invoices
become a seller's products (real names, prices converted to the deployment's currency,
stock received), registered customers, and orders placed through the domain applications,
which the saga then runs like any other (`eventmart demo import-online-retail PATH`).

Re-runnable: every id comes from the data. Users are registered, products listed, stock
received and orders placed with Idempotency-Keys derived from the customer, the StockCode
and the invoice, so a second run (or a run after an interruption) finds what the first
stored and stores nothing twice. An order's id is a uuid5 of its invoice.

What the data does not have is made up plainly: one seller sells everything; a product's
category is the last word of its name ("… LUNCH BAG" -> "bag"); every customer ships to
one London address and pays by sandbox card; an invoice over 50 lines is split into
orders of 50; the orders are placed now, not in 2011.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import pandas as pd

from domain.catalog import Catalog
from domain.inventory import Inventory
from domain.limits import MAX_LINE_QUANTITY, MAX_ORDER_LINES, MAX_PRODUCT_NAME_LENGTH
from domain.orders import Orders
from domain.payments import PaymentIntent, PaymentIntents
from domain.users import Users
from eventmart.ml.online_retail import purchase_lines

NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:online-retail")
KEY = "online-retail"  # the prefix of every Idempotency-Key, and the requests' fingerprint
SELLER_EMAIL = "seller@online-retail.demo"
PASSWORD = "demo-password"
ADDRESS = {
    "name": "Online Retail customer",
    "line1": "1 Gift Street",
    "city": "London",
    "postal_code": "N1 7AA",
    "country": "GB",
}
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class Catalogue:
    """One product per StockCode: its most frequent name and median price (pence)."""

    names: dict[str, str]
    pence: dict[str, float]
    units: dict[str, int]


@dataclass
class ImportResult:
    customers: int = 0
    products: int = 0
    orders: int = 0
    orders_new: int = 0
    lines: int = 0
    product_ids: dict[str, UUID] = field(default_factory=dict)


def category_of(name: str) -> str:
    words = re.findall(r"[A-Za-z]+", name)
    return words[-1].lower() if words else "other"


def order_id_of(invoice: str, part: int) -> UUID:
    return uuid5(NAMESPACE, f"order:{invoice}:{part}")


def read_invoices(path: Path, max_invoices: int | None = None) -> pd.DataFrame:
    lines = purchase_lines(path)
    if max_invoices is not None:
        kept = lines["InvoiceNo"].drop_duplicates().head(max_invoices)
        lines = lines[lines["InvoiceNo"].isin(kept)]
    return lines


def catalogue_of(lines: pd.DataFrame) -> Catalogue:
    names = (
        lines.dropna(subset=["Description"])
        .groupby("StockCode")["Description"]
        .agg(lambda descriptions: descriptions.str.strip().mode().iloc[0])
    )
    return Catalogue(
        names={code: str(name) for code, name in names.items()},
        pence=(lines.groupby("StockCode")["UnitPrice"].median() * 100).to_dict(),
        units=lines.groupby("StockCode")["Quantity"].sum().astype(int).to_dict(),
    )


def invoices(lines: pd.DataFrame) -> Iterator[tuple[str, str, int, list[tuple[str, int]]]]:
    """(invoice, customer, part, [(stock code, quantity)]) in time order; a product's lines
    within an invoice are one line, at most MAX_LINE_QUANTITY units."""
    merged = lines.groupby(["InvoiceNo", "CustomerID", "StockCode"], sort=False)["Quantity"].sum()
    grouped: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for (invoice, customer, code), quantity in merged.items():
        grouped.setdefault((str(invoice), str(customer)), []).append(
            (str(code), min(int(quantity), MAX_LINE_QUANTITY))
        )
    for (invoice, customer), items in grouped.items():
        for part, start in enumerate(range(0, len(items), MAX_ORDER_LINES)):
            yield invoice, customer, part, items[start : start + MAX_ORDER_LINES]


class OnlineRetailImport:
    def __init__(
        self,
        *,
        users: Users,
        catalog: Catalog,
        inventory: Inventory,
        orders: Orders,
        intents: PaymentIntents,
        password_hash: str,
        currency: str,
        rate: float,
        payment_timeout: timedelta,
    ) -> None:
        self.users, self.catalog, self.inventory = users, catalog, inventory
        self.orders, self.intents = orders, intents
        self.password_hash = password_hash
        self.currency, self.rate = currency, rate
        self.payment_timeout = payment_timeout

    def run(self, lines: pd.DataFrame, progress: Progress | None = None) -> ImportResult:
        report = progress or (lambda phase, done, total: None)
        result = ImportResult()
        seller = self.user(SELLER_EMAIL, "Online Retail", "seller")
        catalogue = catalogue_of(lines)
        codes = sorted(catalogue.pence)
        for done, code in enumerate(codes, 1):
            result.product_ids[code] = self.product(seller, code, catalogue)
            report("products", done, len(codes))
        result.products = len(codes)
        customers = sorted(lines["CustomerID"].unique())
        buyers: dict[str, UUID] = {}
        for done, customer in enumerate(customers, 1):
            buyers[customer] = self.user(
                f"customer-{customer}@online-retail.demo", f"Customer {customer}", "customer"
            )
            report("customers", done, len(customers))
        result.customers = len(customers)
        placed = list(invoices(lines))
        for done, (invoice, customer, part, items) in enumerate(placed, 1):
            created = self.order(invoice, part, buyers[customer], items, result.product_ids)
            result.orders_new += created
            result.lines += len(items)
            report("orders", done, len(placed))
        result.orders = len(placed)
        return result

    def user(self, email: str, display_name: str, role: str) -> UUID:
        return self.users.register_user(
            email,
            self.password_hash,
            display_name,
            role,
            idempotency_key=f"{KEY}:user:{email}",
            fingerprint=KEY,
        )

    def price(self, pence: float) -> int:
        """Pence to the deployment currency's minor units, at `rate`, at least one."""
        return max(1, round(pence * self.rate))

    def product(self, seller: UUID, code: str, catalogue: Catalogue) -> UUID:
        name = (catalogue.names.get(code) or code).strip().capitalize()
        product_id = self.catalog.create_product(
            seller,
            f"OR-{code}",
            name[:MAX_PRODUCT_NAME_LENGTH],
            f"Online Retail product {code}",
            category_of(name),
            self.price(catalogue.pence[code]),
            self.currency,
            idempotency_key=f"{KEY}:product:{code}",
            fingerprint=KEY,
        )
        self.inventory.register_product(product_id, seller)
        # Enough for every invoice twice over, received once (the key says so).
        self.inventory.receive_stock(
            product_id,
            seller,
            min(2 * catalogue.units[code] + 10, 1_000_000),
            idempotency_key=f"{KEY}:stock:{code}",
            fingerprint=KEY,
        )
        return product_id

    def order(
        self,
        invoice: str,
        part: int,
        buyer: UUID,
        items: list[tuple[str, int]],
        product_ids: dict[str, UUID],
    ) -> bool:
        """Place one invoice (part) as an order; False if an earlier run placed it."""
        key = f"{KEY}:order:{invoice}:{part}"
        if self.orders.placed_with_key(buyer, key, KEY) is not None:
            return False
        lines: list[dict[str, Any]] = []
        for code, quantity in items:
            product = self.catalog.get_product(product_ids[code])
            lines.append(
                {
                    "product_id": product.id,
                    "quantity": quantity,
                    "unit_price": product.price_amount,
                }
            )
        order_id = order_id_of(invoice, part)
        total = sum(line["quantity"] * line["unit_price"] for line in lines)
        intent = self.intents.open(
            PaymentIntent.open(order_id, total, self.currency, "card", "tok_ok")
        )
        _, created = self.orders.place_order(
            buyer,
            lines,
            ADDRESS,
            intent.reference,
            idempotency_key=key,
            request_fingerprint=KEY,
            now=datetime.now(UTC),
            payment_timeout=self.payment_timeout,
            currency=self.currency,
            order_id=order_id,
        )
        return created
