"""`eventmart up`'s supervisor: every process the stack started — the Kafka node(s), the
embedded PostgreSQL, the relay, the worker hosts, the API — is watched, and one that dies
is started again after a pause that doubles while it keeps dying (0.5 s, 1 s, 2 s … 30 s).
Three restarts within a minute is a crash loop: said in red on the console, in
state_dir/supervisor.json (which `eventmart status`, /readyz and /metrics read), and the
supervisor keeps trying at the longest pause."""

from __future__ import annotations

import os
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from eventmart import broker, database
from eventmart.broker import port_open
from eventmart.settings import Settings
from eventmart.supervision import (
    CRASH_LOOP_RESTARTS,
    CRASH_LOOP_WINDOW_SECONDS,
    pid_alive,
    pid_taken,
    write_state,
)

FIRST_PAUSE_SECONDS = 0.5
LONGEST_PAUSE_SECONDS = 30.0
HEALTH_EVERY_SECONDS = 1.0


@dataclass(eq=False)
class Supervised:
    """One process the supervisor keeps running."""

    name: str
    kind: str  # kafka, postgres, relay, worker, api
    restarts: int = 0
    started_at: float | None = None  # wall clock, for uptime
    last_exit: int | None = None
    next_start_at: float | None = None  # monotonic; set while waiting to restart
    recent: deque[float] = field(default_factory=deque)  # monotonic times of restarts
    health: str = "starting"
    crash_looping: bool = False

    def pid(self) -> int | None:
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def launch(self) -> None:
        raise NotImplementedError

    def exit_code(self) -> int | None:
        return None

    def probe(self) -> bool:
        """Up and answering (beyond merely alive)."""
        return True

    def started(self) -> None:
        self.started_at = time.time()
        self.next_start_at = None
        self.health = "starting"


@dataclass(eq=False)
class Child(Supervised):
    """A process of ours: a Python entry point (relay, worker host, API) or a Kafka node."""

    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    # A process with nothing to probe counts as starting this long (a worker joining its
    # groups, the relay taking its lock), so a restart shows in `status` and /readyz.
    warmup_seconds: float = 5.0

    def probe(self) -> bool:
        return self.started_at is not None and time.time() - self.started_at >= self.warmup_seconds

    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    def launch(self) -> None:
        assert self.log_path is not None
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        self.started()


@dataclass(eq=False)
class Api(Child):
    url: str = ""

    def probe(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass(eq=False)
class KafkaNode(Child):
    settings: Settings | None = None
    node: int = 1

    def launch(self) -> None:
        assert self.settings is not None
        self.process = broker.spawn_node(self.settings, self.node)
        self.started()

    def probe(self) -> bool:
        assert self.settings is not None
        return port_open("127.0.0.1", self.settings.kafka_node_ports()[self.node - 1][0])


@dataclass(eq=False)
class Postgres(Supervised):
    """The embedded server: pg_ctl starts it as a daemon, so it is known by the pid in its
    postmaster.pid, not as a child."""

    settings: Settings | None = None
    durable: bool = True

    def pid(self) -> int | None:
        assert self.settings is not None
        try:
            first = (database.pgdata_dir(self.settings) / "postmaster.pid").read_text().split()
            return int(first[0]) if first else None
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.pid()
        return pid is not None and pid_alive(pid)

    def launch(self) -> None:
        assert self.settings is not None
        old = self.pid()
        if old is not None:
            # A dead postmaster not reaped yet still "runs" for pg_ctl and for postgres's
            # own lock file check: give whoever adopted it a moment to reap it.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and pid_taken(old):
                time.sleep(0.1)
        database.start_embedded(self.settings, durable=self.durable)  # recovers from the WAL
        if not self.alive():
            raise database.DatabaseUnavailable("PostgreSQL did not stay up")
        self.started()

    def probe(self) -> bool:
        assert self.settings is not None
        return port_open("127.0.0.1", self.settings.postgres_port)


@dataclass
class Supervisor:
    processes: list[Supervised]
    state_dir: Path
    console: Console
    checked_at: float = 0.0

    def tick(self, *, stopping: bool = False) -> None:
        """Restart what died (when its pause is over), note health, write the state."""
        now = time.monotonic()
        for process in self.processes:
            if stopping:
                break
            if process.next_start_at is not None:
                if now >= process.next_start_at:
                    self._relaunch(process)
            elif not process.alive():
                self._died(process, now)
        if now - self.checked_at >= HEALTH_EVERY_SECONDS:
            self.checked_at = now
            for process in self.processes:
                if process.next_start_at is None and process.alive():
                    process.health = "up" if process.probe() else "starting"
                elif process.next_start_at is None:
                    process.health = "down"
        self.write()

    def _died(self, process: Supervised, now: float) -> None:
        process.last_exit = process.exit_code()
        process.health = "down"
        process.restarts += 1
        process.recent.append(now)
        while process.recent and now - process.recent[0] > CRASH_LOOP_WINDOW_SECONDS:
            process.recent.popleft()
        streak = len(process.recent)
        pause = min(LONGEST_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2 ** (streak - 1))
        process.next_start_at = now + pause
        looping = streak >= CRASH_LOOP_RESTARTS
        if looping:
            self.console.print(
                f"[bold red]CRASH LOOP: {process.name} died {streak} times within "
                f"{CRASH_LOOP_WINDOW_SECONDS:.0f}s (exit {process.last_exit}); "
                f"restart #{process.restarts} in {pause:.1f}s[/]"
            )
        else:
            self.console.print(
                f"[yellow]{process.name} (pid {process.pid()}) exited ({process.last_exit}); "
                f"restart #{process.restarts} in {pause:.1f}s[/]"
            )
        process.crash_looping = looping

    def _relaunch(self, process: Supervised) -> None:
        try:
            process.launch()
            self.console.print(f"[green]{process.name} restarted (pid {process.pid()})[/]")
        except Exception as error:  # noqa: BLE001 - counted as a death, tried again later
            self.console.print(f"[red]{process.name} could not be restarted: {error}[/]")
            process.next_start_at = None
            self._died(process, time.monotonic())
            return
        # Calm again once it has stayed up a window long: `recent` ages out by itself.
        if len(process.recent) < CRASH_LOOP_RESTARTS:
            process.crash_looping = False

    def state(self) -> dict[str, object]:
        now_wall, now = time.time(), time.monotonic()
        rows = []
        for process in self.processes:
            while process.recent and now - process.recent[0] > CRASH_LOOP_WINDOW_SECONDS:
                process.recent.popleft()
            if process.crash_looping and len(process.recent) < CRASH_LOOP_RESTARTS:
                process.crash_looping = False
            if process.crash_looping:
                status = "crash-looping"
            elif process.next_start_at is not None:
                status = "restarting"
            else:
                status = "running"
            rows.append(
                {
                    "name": process.name,
                    "kind": process.kind,
                    "pid": process.pid() if process.next_start_at is None else None,
                    "started_at": process.started_at,
                    "uptime_seconds": round(now_wall - process.started_at, 1)
                    if process.started_at and process.next_start_at is None
                    else None,
                    "restarts": process.restarts,
                    "restarts_last_minute": len(process.recent),
                    "last_exit": process.last_exit,
                    "state": status,
                    "health": process.health,
                }
            )
        return {"supervisor_pid": os.getpid(), "updated_at": now_wall, "processes": rows}

    def write(self) -> None:
        write_state(self.state_dir, self.state())
