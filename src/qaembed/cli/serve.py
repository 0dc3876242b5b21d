"""``qaembed serve``: the HTTP API and web page over one or more indexes.

Examples::

    qaembed serve --index indexes/minilm
    qaembed serve --index base=indexes/minilm --index tuned=indexes/infonce --port 8080
    qaembed serve --index indexes/minilm --host 0.0.0.0      # reachable from other machines: asked for

See docs/serve.md for the API, the limits and the web page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from qaembed.errors import ConfigError, option_error


def parse_index_options(values: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after its folder) → {name: path}; a name used twice is an error.

    >>> parse_index_options(["indexes/minilm", "tuned=runs/x/index"])
    {'minilm': PosixPath('indexes/minilm'), 'tuned': PosixPath('runs/x/index')}
    """
    if not values:
        raise ConfigError("give at least one --index (an index folder written by qaembed index build)")
    indexes: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).name or value, value
        if not name or not path:
            raise ConfigError(f"--index {value!r}: give PATH or NAME=PATH")
        if name in indexes:
            raise ConfigError(f"--index: two indexes are named {name!r}; name them with NAME=PATH")
        indexes[name] = Path(path)
    return indexes


def serve_command(
    index: list[str] = typer.Option(..., help="Index folder, or NAME=FOLDER; repeat to serve several (the first is the default)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind: loopback by default; 0.0.0.0 exposes it to the network."),
    port: int = typer.Option(8000, help="TCP port (0: any free port, printed)."),
    maps: Optional[Path] = typer.Option(None, help="Folder of embedding-map PNGs (qaembed map) shown by the web page."),
    max_k: int = typer.Option(100, help="Most answers per question."),
    max_queries: int = typer.Option(32, help="Most questions (or texts to embed) per request."),
    max_query_chars: int = typer.Option(2000, help="Longest question or text, in characters."),
    max_body_bytes: int = typer.Option(256 * 1024, help="Largest request body, in bytes."),
    max_pending: int = typer.Option(64, help="Requests waiting per index before new ones are refused (503)."),
    max_batch: int = typer.Option(64, help="Most texts encoded in one forward pass (waiting requests are batched)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check the index files' hashes when loading."),
    device: Optional[str] = typer.Option(None, help="torch device for encoding queries."),
    log_level: str = typer.Option("warning", help="uvicorn log level (info shows each request)."),
) -> None:
    """Serve indexes over HTTP: POST /search, POST /embed, GET /health, OpenAPI docs at /docs, a web page at /."""
    from pydantic import ValidationError

    from qaembed.cli.index import _quiet_model_loading
    from qaembed.model import check_device
    from qaembed.serve import ServerLimits, bind, create_app
    from qaembed.serve.run import is_loopback, serve

    paths = parse_index_options(index)
    try:
        limits = ServerLimits(max_k=max_k, max_queries=max_queries, max_query_chars=max_query_chars,
                              max_body_bytes=max_body_bytes, max_pending=max_pending, max_batch=max_batch)
    except ValidationError as exc:
        raise option_error(exc) from None
    if maps is not None and not maps.is_dir():
        raise ConfigError(f"--maps {maps}: no such folder")
    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise ConfigError(f"--log-level must be one of critical, error, warning, info, debug, trace; got {log_level!r}")
    check_device(device)
    sock = bind(host, port)  # before loading models: a port in use fails in a second, not after a minute
    try:
        from qaembed.index import load_index

        loaded = {}
        for name, path in paths.items():
            with _quiet_model_loading():
                loaded[name] = load_index(path, device=device, verify=verify)
            typer.echo(f"loaded {name}: {path} ({len(loaded[name]):,} answers, {loaded[name].manifest.model.reference})", err=True)
        app = create_app(loaded, limits, maps=maps)
    except BaseException:
        sock.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if not is_loopback(host):
        typer.echo(f"warning: bound to {host}: any machine that can reach this one can query it (no authentication)", err=True)
    typer.echo(f"serving {len(loaded)} index(es) on http://{shown}:{bound_port}/ (API docs: /docs); Ctrl-C stops", err=True)
    serve(app, sock, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
