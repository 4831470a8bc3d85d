"""`eventmart demo import-online-retail` on a few real rows: products, customers and
orders stored through the domain applications, and a second run stores nothing twice."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

from entrypoints.demo_import import order_id_of
from entrypoints.stack import Infrastructure
from eventmart.settings import Settings
from eventmart.wiring import build_applications

ROWS = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,84029E,RED WOOLLY HOTTIE WHITE HEART.,6,2010-12-01T08:26:00,3.39,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01T08:26:00,3.39,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,2,2010-12-01T08:26:00,3.39,17850.0,United Kingdom
536366,22632,HAND WARMER RED POLKA DOT,6,2010-12-01T08:28:00,1.85,17850.0,United Kingdom
536367,22632,HAND WARMER RED POLKA DOT,2,2010-12-01T08:34:00,1.85,13047.0,United Kingdom
536368,POST,POSTAGE,1,2010-12-01T08:35:00,18.00,13047.0,United Kingdom
536369,22633,HAND WARMER UNION JACK,1,2010-12-01T08:36:00,2.10,,United Kingdom
C536370,22632,HAND WARMER RED POLKA DOT,-1,2010-12-01T08:37:00,1.85,13047.0,United Kingdom
"""


def test_invoices_become_products_customers_and_orders_once(
    tmp_path: Path,
    infrastructure: Infrastructure,
    settings: Settings,
    eventmart_cli: Callable[..., Any],
):
    path = tmp_path / "few.csv.gz"
    path.write_bytes(gzip.compress(ROWS.encode()))
    first = eventmart_cli("demo", "import-online-retail", str(path), "--rate", "9")
    assert "3 products, 2 customers, 3 orders (3 new, 4 lines)" in first.output, first.output
    again = eventmart_cli("demo", "import-online-retail", str(path), "--rate", "9")
    assert "3 orders (0 new" in again.output, again.output
    applications = build_applications(settings)
    try:
        catalog, orders = applications.catalog, applications.orders
        lantern_id = catalog.find_product_id("OR-71053")
        assert lantern_id is not None
        lantern = catalog.get_product(lantern_id)
        assert (lantern.name, lantern.category, lantern.price_amount, lantern.version) == (
            "White metal lantern",
            "lantern",
            3051,  # 339 pence at 9 per pound
            1,  # listed once, whatever the runs
        )
        assert catalog.find_product_id("OR-22633") is None  # a guest's purchase only
        order = orders.get_order(order_id_of("536365", 0))
        quantities = sorted(line.quantity for line in order.lines)
        assert quantities == [6, 8]  # the lantern's two lines are one
        assert applications.inventory.get_stock(lantern_id).on_hand == 2 * 8 + 10
    finally:
        for application in applications.all():
            application.close()
