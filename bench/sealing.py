"""What sealing and opening personal fields cost per event (eventmart.sealing): this
process's CPU and wall time per call, on a running PostgreSQL that holds the keys.

    ./run up --no-demo                   # one shell (or any PostgreSQL; DATABASE_URL)
    .venv/bin/python bench/sealing.py    # another

Measured, each --calls times after a warm-up, for an order.placed's four address lines
(the most fields one event seals) and a user.registered's two:
- `seal_all`: one key look-up (an upsert and a select on personal_data_keys) and AES-GCM
  per field;
- `open_all`: one key look-up per key named (a select) and AES-GCM per field;
- the AES-GCM alone (the key in hand), to show what a key cache would leave: nearly all
  of the cost is the round trip, which a cache would remove at the price of an erased key
  staying readable in each process for the cache's lifetime.
"""

from __future__ import annotations

import argparse
import base64
import os
import time
import uuid
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rich.console import Console
from rich.table import Table

from eventmart.database import make_pool
from eventmart.personal_data import FieldCipher, PostgresKeyService
from eventmart.settings import get_settings

ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "1 Analytical Row",
    "city": "London",
    "postal_code": "N1 7AA",
}
USER = {"email": "ada@example.com", "display_name": "Ada"}


def measure(calls: int, call: Callable[[], object]) -> tuple[float, float]:
    """(CPU µs, wall µs) per call, after a tenth as many warm-up calls."""
    for _ in range(max(1, calls // 10)):
        call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        call()
    return (
        (time.process_time() - cpu) / calls * 1e6,
        (time.perf_counter() - wall) / calls * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    settings = get_settings()
    pool = make_pool(settings.context_dsn("users"), max_size=2, autocommit=True)
    keys = PostgresKeyService(pool)
    keys.install()
    cipher = FieldCipher(keys)
    subject = uuid.uuid4()
    sealed_address = list(cipher.seal_all(subject, ADDRESS).values())
    sealed_user = list(cipher.seal_all(subject, USER).values())
    key = os.urandom(32)
    nonce = os.urandom(12)
    aes = AESGCM(key)

    def aes_only() -> None:
        for text in ADDRESS.values():
            sealed = aes.encrypt(nonce, text.encode(), b"kid")
            base64.urlsafe_b64encode(nonce + sealed)
            aes.decrypt(nonce, sealed, b"kid")

    rows = [
        ("seal 4 address lines", lambda: cipher.seal_all(subject, ADDRESS)),
        ("open 4 address lines", lambda: cipher.open_all(sealed_address)),
        ("seal e-mail + name", lambda: cipher.seal_all(subject, USER)),
        ("open e-mail + name", lambda: cipher.open_all(sealed_user)),
        ("AES-GCM only, 4 lines sealed + opened", aes_only),
    ]
    table = Table(title=f"per event, {args.calls} calls each (CPU is this process's)")
    for column in ("what", "CPU µs", "wall µs"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for name, call in rows:
        cpu, wall = measure(args.calls, call)
        table.add_row(name, f"{cpu:.1f}", f"{wall:.1f}")
    keys.destroy(subject)
    pool.close()
    Console().print(table)


if __name__ == "__main__":
    main()
