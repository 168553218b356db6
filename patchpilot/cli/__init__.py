"""The ``patchpilot`` command line. Each command group lives in its own module and imports
heavy libraries (torch, pycromanager) only when its command runs, so ``--help`` is instant."""

from __future__ import annotations

import typer

from patchpilot import __version__
from patchpilot.cli._acquisition import benchmark_app, replay
from patchpilot.cli._config import config_app
from patchpilot.cli._control import control_app
from patchpilot.cli._dataset import register_dataset_commands
from patchpilot.cli._experiment import dry_run, run
from patchpilot.cli._gan import gan_app
from patchpilot.cli._hw import hw_app
from patchpilot.cli._localiser import COMMANDS as LOCALISER_COMMANDS
from patchpilot.cli._panel import panel
from patchpilot.cli._scenarios import approach

app = typer.Typer(
    name="patchpilot",
    help="Image-guided, closed-loop control of several patch pipettes on a two-photon rig.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"patchpilot {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """patchpilot: automated multi-pipette approach with manual override."""


app.add_typer(config_app, name="config")
app.add_typer(control_app, name="control")
app.command("dry-run")(dry_run)
app.command("run")(run)
app.command("replay")(replay)
benchmark_app.command("approach")(approach)
app.add_typer(benchmark_app, name="benchmark")
app.add_typer(hw_app, name="hw")
app.add_typer(gan_app, name="gan")
app.command("panel")(panel)
for _name, _command in LOCALISER_COMMANDS.items():
    app.command(_name)(_command)
register_dataset_commands(app)
