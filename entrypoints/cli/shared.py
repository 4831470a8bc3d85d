"""What the command's parts share: the console for messages, progress bars, topic choice."""

from __future__ import annotations

from typing import Any

from rich.console import Console

console = Console(stderr=True)


def progress_bar() -> Any:
    """A rich progress bar that also shows events per second."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class EventsPerSecond(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed or 0:,.0f} events/s", style="cyan")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        EventsPerSecond(),
        TimeElapsedColumn(),
        console=console,
    )


def event_topics(topics: str | None) -> list[str]:
    from eventmart.broker import topic_specs

    if topics:
        return [topic.strip() for topic in topics.split(",") if topic.strip()]
    return [spec.name for spec in topic_specs() if spec.name.endswith(".events")]
