"""What `eventmart up`'s supervisor says about the processes it runs: it writes
state_dir/supervisor.json (entrypoints/supervisor.py), and `eventmart status`, /readyz and
/metrics read it here. No file, or one whose supervisor is gone, is no supervised stack."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATE_FILE = "supervisor.json"
# The supervisor rewrites the file every couple of seconds; older than this, it is gone.
STALE_SECONDS = 15.0
# A process restarted this many times within CRASH_LOOP_WINDOW_SECONDS is crash-looping.
CRASH_LOOP_RESTARTS = 3
CRASH_LOOP_WINDOW_SECONDS = 60.0


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def pid_taken(pid: int) -> bool:
    """Whether the pid names a process at all, a zombie included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not reaped yet, does not)."""
    if not pid_taken(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: kill(0) is all there is
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def write_state(state_dir: Path, state: dict[str, Any]) -> None:
    """Atomically, so a reader never sees half a file."""
    path = state_path(state_dir)
    draft = path.with_name(f".{STATE_FILE}.{os.getpid()}")
    draft.write_text(json.dumps(state, indent=1))
    draft.replace(path)


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The running supervisor's last word, or None (no stack, or its supervisor died)."""
    try:
        state: dict[str, Any] = json.loads(state_path(state_dir).read_text())
    except (OSError, ValueError):
        return None
    if not pid_alive(int(state.get("supervisor_pid", 0))):
        return None
    if time.time() - float(state.get("updated_at", 0)) > STALE_SECONDS:
        return None
    return state


def trouble(state: dict[str, Any]) -> list[str]:
    """Each process that is not up and running, said for a person: `kafka-2 crash-looping
    (5 restarts)`, `sagas restarting (#1)`."""
    said = []
    for process in state["processes"]:
        if process["state"] == "running" and process["health"] == "up":
            continue
        if process["state"] == "running":
            said.append(f"{process['name']} {process['health']}")
        else:
            said.append(f"{process['name']} {process['state']} (#{process['restarts']})")
    return said
