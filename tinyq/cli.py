"""The ``tinyq`` command line.

Heavy modules (TensorFlow, the stages) are imported inside the commands, so
``tinyq --help`` and ``tinyq boards`` start in a fraction of a second.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tinyq import __version__
from tinyq.errors import TinyqError


class _Group(click.Group):
    """Turn every :class:`TinyqError` into ``error: … (hint: …)`` and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TinyqError as e:
            if ctx.obj and ctx.obj.get("verbose"):
                import traceback

                traceback.print_exc()
            click.echo(f"error: {e.message} (hint: {e.hint})", err=True)
            ctx.exit(e.exit_code)


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinyq")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and tool output.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Take a trained Keras model to a microcontroller as full-int8 C, and prove it works there.

    \b
    tinyq build model.keras --board nano33 --calib calib.npy
    tinyq flash --emulator qemu
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the boards as JSON.")
def boards(as_json: bool) -> None:
    """List the boards tinyq can build for, with their memory and clock."""
    from tinyq.boards import load_boards

    rows = [b.summary() for b in load_boards().values()]
    if as_json:
        _echo_json(rows)
        return
    click.echo(f"{'id':<12} {'name':<22} {'chip':<12} {'clock':>8} {'flash':>9} {'RAM':>8}  emulators")
    for r in rows:
        click.echo(
            f"{r['id']:<12} {r['name']:<22} {r['chip']:<12} {r['clock_hz'] / 1e6:>5.0f}MHz "
            f"{r['flash_bytes'] // 1024:>6} KB {r['ram_bytes'] // 1024:>5} KB  {', '.join(r['emulators'])}"
        )


def main() -> None:
    """Console entry point."""
    cli(prog_name="tinyq")


if __name__ == "__main__":  # pragma: no cover
    main()
