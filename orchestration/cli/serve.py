"""``eventlake serve``: the HTTP front door on uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os

import click

from orchestration.cli.common import friendly_errors, settings_of

__all__ = ["serve"]

log = logging.getLogger(__name__)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (loopback unless told otherwise).")  # fmt: skip
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="uvicorn worker processes.")  # fmt: skip
@click.option("--model", "names", multiple=True, help="Serve only these (default: every one).")
@click.pass_context
@friendly_errors
def serve(ctx: click.Context, host: str, port: int, workers: int, names: tuple[str, ...]) -> None:
    """Serve predictions over HTTP (OpenAPI at /openapi.json, docs at /docs) until Ctrl-C."""
    import uvicorn

    from orchestration.serving.app import app_from_settings

    settings = settings_of(ctx, serve_models=",".join(names) or None)
    if not _loopback(host):
        log.warning("serving on %s: reachable from other machines (no authentication)", host)
    click.echo(f"serving {settings.serve_models or 'every model'} on http://{host}:{port} "
               f"(docs at /docs)")  # fmt: skip
    if workers == 1:
        uvicorn.run(app_from_settings(settings), host=host, port=port, log_level="warning")
        return
    app_from_settings(settings)  # fail here, not in every worker, on a bad setting
    os.environ["EVENTLAKE_SERVE_MODELS"] = settings.serve_models  # read by each worker
    if ctx.obj.get("config_file"):
        os.environ["EVENTLAKE_CONFIG"] = ctx.obj["config_file"]
    uvicorn.run(
        "orchestration.serving.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
