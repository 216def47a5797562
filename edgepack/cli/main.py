"""``edgepack``: the entry point and the one error boundary.

Heavy modules are imported inside each command, so ``edgepack --help`` is instant (and
``traceback`` only when one is printed).
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import EXIT_FAILURE, EdgepackError
from . import (
    base_image_cmd,
    build_cmd,
    deploy_cmd,
    device_cmd,
    image_cmd,
    init_cmd,
    invoke_cmd,
    keys_cmd,
    publish_cmd,
    report_cmd,
    serve_cmd,
    targets_cmd,
    verify_cmd,
)


class _Group(click.Group):
    """Turns every EdgepackError into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except EdgepackError as e:
            if ctx.obj and ctx.obj.get("verbose"):
                import traceback

                traceback.print_exc()
            click.echo(f"edgepack: error: {e.hint()}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("edgepack: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgepack")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Turn a trained model into signed, ready-to-run artifacts for AWS Lambda,
    containers and edge devices."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


for command in (
    init_cmd.init,
    keys_cmd.keys,
    build_cmd.build,
    verify_cmd.verify,
    invoke_cmd.invoke,
    targets_cmd.targets,
    report_cmd.report,
    base_image_cmd.base_image,
    serve_cmd.serve,
    image_cmd.image,
    deploy_cmd.deploy,
    device_cmd.device,
    publish_cmd.publish,
):
    cli.add_command(command)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except Exception:  # a bug, not bad input: show it, exit 1
        import traceback

        traceback.print_exc()
        sys.exit(EXIT_FAILURE)
