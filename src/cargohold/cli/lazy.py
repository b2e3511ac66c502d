"""A command group that imports some of its commands only when they are named (or help lists them).

The commands that work on the metadata database directly pull in SQLAlchemy and the auth modules, which is
about half of the CLI's start-up time; the HTTP commands need neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import typer
import typer.main
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click import Command, Context

LazyCommands = dict[str, tuple[str, str]]
"""Command name -> (module, attribute): a Typer app, or a function that becomes a single command."""


def lazy_group(commands: LazyCommands) -> type[TyperGroup]:
    class LazyGroup(TyperGroup):
        def list_commands(self, ctx: Context) -> list[str]:
            return [*super().list_commands(ctx), *(name for name in commands if name not in self.commands)]

        def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
            found = super().get_command(ctx, cmd_name)
            if found is None and cmd_name in commands:
                module, attribute = commands[cmd_name]
                target = getattr(importlib.import_module(module), attribute)
                holder = typer.Typer(add_completion=False)
                if isinstance(target, typer.Typer):
                    holder.add_typer(target, name=cmd_name)
                else:
                    holder.command(cmd_name)(target)
                built = typer.main.get_command(holder)
                found = built.commands[cmd_name] if isinstance(built, TyperGroup) else built
                self.add_command(found, cmd_name)
            return found

    return LazyGroup
