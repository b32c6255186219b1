"""How every `smoe` command reports a problem the user can fix: one `error:` line, exit status 1.
Nothing stored is lost, so the same command resumes after the fix."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import SmoeError

console = Console(stderr=True)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SmoeError as exc:
            console.print(
                f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True
            )  # one line, never wrapped
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("interrupted: finished generations are stored; run again to resume")
            raise typer.Exit(130) from None

    return wrapper
