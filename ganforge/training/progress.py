"""Progress reporters: a live rich display, one plain line per epoch for logs (--quiet), or nothing."""

from __future__ import annotations

from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ganforge.training.run_folder import evaluation_values


class Reporter(Protocol):
    """Where progress goes: a live display, plain log lines, or nowhere."""

    def start(self, first_epoch: int, epochs: int, steps_per_epoch: int, done_steps: int = 0) -> None: ...

    def note(self, message: str) -> None: ...

    def advance(self) -> None: ...

    def log(self, record: dict[str, Any]) -> None: ...

    def finish(self) -> None: ...


class SilentReporter:
    def start(self, first_epoch: int, epochs: int, steps_per_epoch: int, done_steps: int = 0) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def advance(self) -> None:
        pass

    def log(self, record: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


def describe(record: dict[str, Any]) -> str:
    parts = [f"d_loss {fmt(record['d_loss'])}", f"g_loss {fmt(record['g_loss'])}"]
    parts += [f"D(x) {fmt(record['D(x)'])}", f"D(G(z)) {fmt(record['D(G(z))'])}"]
    if record.get("d_acc_real") is not None:
        parts.append(f"acc real/fake {record['d_acc_real']:.2f}/{record['d_acc_fake']:.2f}")
    if record.get("class_acc_real") is not None:
        parts.append(f"class acc real/fake {record['class_acc_real']:.2f}/{record['class_acc_fake']:.2f}")
    if record.get("augment_strength") is not None:
        parts.append(f"augment p {record['augment_strength']:.3f}")
    if record.get("images/s"):
        parts.append(f"{record['images/s']:,.0f} img/s")
    return "  ".join(parts)


def describe_eval(record: dict[str, Any]) -> str:
    floor = record["floor"]
    return "  ".join(f"{key} {value:.4g} (real {floor[key]:.4g})" for key, value in evaluation_values(record).items())


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class RichReporter:
    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console,
        )
        self.task = None

    def start(self, first_epoch: int, epochs: int, steps_per_epoch: int, done_steps: int = 0) -> None:
        self.task = self.progress.add_task(
            "train",
            total=(epochs - first_epoch) * steps_per_epoch,
            completed=done_steps,  # a run resumed mid-epoch
            epoch=first_epoch + 1,
            epochs=epochs,
            stats="",
        )
        self.progress.start()

    def note(self, message: str) -> None:
        self.progress.console.print(message, highlight=False, soft_wrap=True)

    def advance(self) -> None:
        self.progress.advance(self.task)

    def log(self, record: dict[str, Any]) -> None:
        if record["event"] == "eval":
            self.note(f"epoch {record['epoch']} eval: {describe_eval(record)}")
            return
        self.progress.update(self.task, epoch=record["epoch"], stats=describe(record))
        if record["event"] == "epoch":
            self.progress.console.print(f"epoch {record['epoch']}: {describe(record)}", highlight=False, soft_wrap=True)

    def finish(self) -> None:
        self.progress.stop()


class LineReporter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.epochs = 0

    def start(self, first_epoch: int, epochs: int, steps_per_epoch: int, done_steps: int = 0) -> None:
        self.epochs = epochs

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True)

    def advance(self) -> None:
        pass

    def log(self, record: dict[str, Any]) -> None:
        if record["event"] == "eval":
            self.note(f"epoch {record['epoch']}/{self.epochs} eval: {describe_eval(record)}")
        elif record["event"] == "epoch":
            self.console.print(
                f"epoch {record['epoch']}/{self.epochs} step {record['step']}: {describe(record)}",
                highlight=False,
                soft_wrap=True,
            )

    def finish(self) -> None:
        pass
