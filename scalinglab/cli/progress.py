"""Rich progress bar for a study: trials done/total, current data size and model size, ETA."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column

from scalinglab.models.registry import size_label


def _size(spec: dict) -> str:
    return size_label(spec["model"]["size"])


class StudyProgress:
    def __init__(self, title: str, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.title = escape(title)  # the description column is rich markup
        # The current trial goes last: on a narrow terminal it is what gets cut, not the ETA.
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[now]}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=40)),
            console=self.console,
        )
        self.bad = 0

    def start(self, total: int, done: int, todo: list):
        first = f"m={todo[0][0]['data_size']} {_size(todo[0][0])}" if todo else ""
        self.task = self.bar.add_task(self.title, total=total, completed=done, now=first)
        self.bar.start()

    def extend(self, n_more: int):
        """A search phase planned more trials than estimated: grow the total so the bar stays honest."""
        t = self.bar.tasks[0]
        if t.completed + n_more > t.total:
            self.bar.update(self.task, total=t.completed + n_more)

    def advance(self, spec: dict, result: dict):
        now = f"m={spec['data_size']} {_size(spec)} seed {spec['seed']}: {result['status']}"
        if result["status"] == "ok":
            now += f" {result['min_dev_error']:.3f}"
        else:
            self.bad += 1
            self.console.print(f"[yellow]trial {result['id']} {result['status']}: {escape(str(result.get('error')))}")
        self.bar.update(self.task, advance=1, now=now)

    def shared(self, n: int):
        """`n` trials were finished by another run on the same store (store/claims.py)."""
        self.bar.update(self.task, advance=n)

    def stop(self):
        self.bar.stop()
