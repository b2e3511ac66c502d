"""The `cargohold` command's entry point: `serve` is started without loading every other command (about a
quarter of a second of imports on a start that should take less than half a second)."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        import typer

        from cargohold.cli.serve import serve

        app = typer.Typer(add_completion=False)
        app.callback()(_no_options)
        app.command("serve")(serve)
        app(prog_name="cargohold")
        return
    from cargohold.cli.main import app as full

    full(prog_name="cargohold")


def _no_options() -> None:
    """cargohold: a private container registry that speaks ACR's APIs."""
