"""A local Jaeger for `eventmart up --tracing`: built once from the Go module proxy into the
cache (as the Kafka jars are fetched once), run with in-memory storage on the stack's own
ports, receiving OTLP/HTTP from every process of the stack (docs/tracing.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from rich.console import Console

from eventmart.settings import Settings

JAEGER_VERSION = "v1.75.0"
JAEGER_PACKAGE = "github.com/jaegertracing/jaeger/cmd/jaeger"


class JaegerUnavailable(RuntimeError):
    """Jaeger could not be built (no Go toolchain, or the build failed)."""


def jaeger_binary(settings: Settings) -> Path:
    return settings.cache_dir / f"jaeger-{JAEGER_VERSION}" / "bin" / "jaeger"


def fetch_jaeger(settings: Settings, console: Console | None = None) -> Path:
    """Build Jaeger once with `go` (its module is a tool of a module of our own: the program's
    go.mod has replace directives, which `go install pkg@version` refuses)."""
    binary = jaeger_binary(settings)
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        raise JaegerUnavailable("`up --tracing` needs the Go toolchain to build Jaeger once")
    console = console or Console(stderr=True)
    module = binary.parent.parent / "module"
    module.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(binary.parent), "GOFLAGS": "-buildvcs=false"}
    steps = [
        ["go", "get", "-tool", f"{JAEGER_PACKAGE}@{JAEGER_VERSION}"],
        ["go", "install", "tool"],
    ]
    if not (module / "go.mod").exists():
        steps.insert(0, ["go", "mod", "init", "eventmart.local/jaeger"])
    with console.status(f"Building Jaeger {JAEGER_VERSION} with go (first run only)…"):
        for step in steps:
            done = subprocess.run(
                step, cwd=module, env=env, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise JaegerUnavailable(
                    f"{' '.join(step)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
                )
    console.print(f"[green]✓[/] Jaeger {JAEGER_VERSION} cached in {binary}")
    return binary


def jaeger_config(settings: Settings) -> Path:
    """Jaeger v2 (an OpenTelemetry Collector) with in-memory storage, on our ports only."""
    host = "127.0.0.1"
    path = settings.state_dir / "jaeger.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: {host}:{settings.jaeger_ui_port}
    grpc:
      endpoint: {host}:{settings.jaeger_ui_port + 1}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: {host}:{settings.jaeger_otlp_port}
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""
    )
    return path


def otlp_endpoint(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.jaeger_otlp_port}"


def ui_address(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.jaeger_ui_port}"
