"""The decoding processes of a bulk load, seen from the rebuild (projections.rebuild): the
partitions shared out among them, each started as `python -m projections.decode_shard`,
and their frames read back in the order each sends them (the protocol is there)."""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any, Self

from aiokafka import TopicPartition

from eventmart.contracts import Event
from projections.decode_shard import HEADER, Frame

FRAME_BUFFER = 16 * 1024 * 1024
DECODER_MODULE = "projections.decode_shard"

Share = list[list[Any]]  # [[topic, partition, start, target], ...]
Decoded = tuple[dict[tuple[str, int], int], int, int, list[Event]]


def balanced_shares(
    positions: dict[TopicPartition, int],
    targets: dict[TopicPartition, int],
    behind: set[TopicPartition],
    decoders: int,
) -> list[Share]:
    """The partitions `behind` in at most `decoders` shares, balanced by records left
    (the largest placed first, each in the lightest share so far)."""
    shares: list[Share] = [[] for _ in range(min(decoders, len(behind)))]
    sizes = [0] * len(shares)
    for tp in sorted(behind, key=lambda tp: (positions.get(tp, 0) - targets[tp], tp)):
        lightest = sizes.index(min(sizes))
        shares[lightest].append([tp.topic, tp.partition, positions.get(tp, 0), targets[tp]])
        sizes[lightest] += targets[tp] - positions.get(tp, 0)
    return shares


class DecodingProcesses:
    """One process per share, started on enter and killed (if still running) on exit."""

    def __init__(self, bootstrap: str, types: Sequence[str], shares: list[Share]) -> None:
        self.bootstrap, self.types, self.shares = bootstrap, list(types), shares
        self.processes: list[asyncio.subprocess.Process] = []
        self.pumps: list[asyncio.Task[None]] = []
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue(maxsize=2 * len(shares))

    async def __aenter__(self) -> Self:
        self.processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                DECODER_MODULE,
                json.dumps({"bootstrap": self.bootstrap, "types": self.types, "share": share}),
                stdout=asyncio.subprocess.PIPE,
                limit=FRAME_BUFFER,
            )
            for share in self.shares
        ]
        self.pumps = [asyncio.create_task(_pump(process, self.queue)) for process in self.processes]
        return self

    async def __aexit__(self, *_: object) -> None:
        for pump in self.pumps:
            pump.cancel()
        for process in self.processes:
            if process.returncode is None:
                process.kill()
            await process.wait()

    async def frames(self) -> AsyncIterator[Decoded]:
        """Every frame with events, as they arrive, until each process sent its last; a
        process that dies first is a RuntimeError."""
        running = len(self.processes)
        while running:
            frame = await self.queue.get()
            if frame is None:
                codes = [process.returncode for process in self.processes]
                raise RuntimeError(
                    f"a decoding process (projections.decode_shard) failed: exit codes {codes}"
                )
            reached, read, malformed, events = frame
            if events is None:
                running -= 1
                continue
            yield reached, read, malformed, events


async def _pump(process: asyncio.subprocess.Process, frames: asyncio.Queue[Frame | None]) -> None:
    """A decoding process's frames into `frames`, up to its last; None if it dies first."""
    assert process.stdout is not None
    try:
        while True:
            (size,) = HEADER.unpack(await process.stdout.readexactly(HEADER.size))
            frame: Frame = pickle.loads(
                await process.stdout.readexactly(size)
            )  # from our own child
            await frames.put(frame)
            if frame[3] is None:
                return
    except asyncio.IncompleteReadError:
        await process.wait()
        await frames.put(None)
