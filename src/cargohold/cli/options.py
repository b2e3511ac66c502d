"""Options the management commands share, spelled as `az acr` spells them, and the parsing of their values."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from typer._click import Context


class MultiValueCommand(TyperCommand):
    """A command whose repeatable options also take several values after one flag, as az's do:
    `--actions push delete` means `--actions push --actions delete`."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        repeatable = {name for param in self.params if getattr(param, "multiple", False) for name in param.opts}
        expanded: list[str] = []
        flag: str | None = None
        awaiting = False
        for index, arg in enumerate(args):
            if arg == "--":
                expanded += args[index:]
                break
            if flag is not None and not _is_flag(arg):
                expanded += [arg] if awaiting else [flag, arg]
                awaiting = False
                continue
            name = arg.split("=", 1)[0]
            flag = name if _is_flag(arg) and name in repeatable else None
            awaiting = flag is not None and "=" not in arg
            expanded.append(arg)
        return super().parse_args(ctx, expanded)


def _is_flag(arg: str) -> bool:
    return arg.startswith("-") and len(arg) > 1


class Switch(str, Enum):
    true = "true"
    false = "false"


class Status(str, Enum):
    enabled = "enabled"
    disabled = "disabled"


class DefaultAction(str, Enum):
    Allow = "Allow"
    Deny = "Deny"


class SkuName(str, Enum):
    Basic = "Basic"
    Standard = "Standard"
    Premium = "Premium"


def switch(value: Switch | None) -> bool | None:
    return None if value is None else value is Switch.true


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
    """`k=v` words as az takes them for --tags and --headers: a bare `k` means an empty value, and a single
    empty word (`--tags ""`) clears them."""
    if values is None:
        return None
    pairs: dict[str, str] = {}
    for value in values:
        if not value:
            continue
        key, _, item = value.partition("=")
        if not key:
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        pairs[key] = item
    return pairs


ServerDataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Talk to the server serving this data directory (its server.json and initial-credentials). "
    "Default: the environment, else the `account login` profile, else $CARGOHOLD_DATA_DIR or ./data.")]
Subscription = Annotated[str | None, typer.Option(
    "--subscription", help="Subscription (default: the profile's or environment's, else 'default').")]
ResourceGroup = Annotated[str | None, typer.Option(
    "--resource-group", "-g", help="Resource group (found from the name when not given).")]
RegistryName = Annotated[str | None, typer.Option(
    "--name", "-n", help="Registry name (default: the only registry in the subscription).")]
RegistryOption = Annotated[str | None, typer.Option(
    "--registry", "-r", help="Registry name (default: the only registry in the subscription).")]
Tags = Annotated[list[str] | None, typer.Option(
    "--tags", help="Space-separated KEY[=VALUE] tags; \"\" clears them.")]
