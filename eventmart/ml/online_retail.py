"""The Online Retail data set (UCI; ../shared/datasets/README.md) as interactions and items:
real purchases written by nobody here, the evaluation figure that counts.

Kept: invoice lines of known customers (guests have no CustomerID), with a positive
quantity and price, not cancellations (InvoiceNo "C...") and of real products (a
StockCode of five digits, perhaps with a letter; POST, DOT, M, BANK CHARGES, gift
vouchers and the like are fees or adjustments). Each line is a purchase; the item is
its StockCode, named by its most frequent Description, priced at its median UnitPrice
in pence (minor units, as the shop's catalogue stores prices).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from eventmart.ml.interactions import (
    PURCHASE,
    PURCHASE_WEIGHT,
    checked_interactions,
    checked_items,
)

PRODUCT_CODE = r"^\d{5}[A-Za-z]*$"
COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice"]


def read_online_retail(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions, items) of the CSV (gzipped or not)."""
    lines = purchase_lines(path)
    interactions = pd.DataFrame(
        {
            "user_id": lines["CustomerID"],
            "item_id": lines["StockCode"],
            "weight": PURCHASE_WEIGHT,
            "datetime": pd.to_datetime(lines["InvoiceDate"]),
            "kind": PURCHASE,
        }
    )
    names = (
        lines.dropna(subset=["Description"])
        .groupby("StockCode")["Description"]
        .agg(lambda descriptions: descriptions.str.strip().mode().iloc[0])
    )
    prices = lines.groupby("StockCode")["UnitPrice"].median() * 100
    items = pd.DataFrame({"item_id": prices.index, "price": prices.to_numpy()})
    items["name"] = items["item_id"].map(names).fillna("")
    return checked_interactions(interactions), checked_items(items)


def purchase_lines(path: Path) -> pd.DataFrame:
    """The CSV's invoice lines that are purchases of products by known customers (see the
    module docstring), StockCode in upper case and CustomerID as digits."""
    raw = pd.read_csv(
        path,
        dtype={"InvoiceNo": str, "StockCode": str, "Description": str, "CustomerID": str},
    )
    missing = [column for column in [*COLUMNS, "CustomerID"] if column not in raw.columns]
    if missing:
        raise ValueError(f"{path} is not the Online Retail CSV: no {', '.join(missing)} column")
    lines = raw[
        raw["CustomerID"].notna()
        & ~raw["InvoiceNo"].str.startswith("C")
        & (raw["Quantity"] > 0)
        & (raw["UnitPrice"] > 0)
        & raw["StockCode"].str.match(PRODUCT_CODE)
    ].copy()
    lines["StockCode"] = lines["StockCode"].str.upper()
    lines["CustomerID"] = lines["CustomerID"].str.removesuffix(".0")
    return lines
