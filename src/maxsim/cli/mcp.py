"""``maxsim mcp``: an MCP server over a collection, whose tools assistants call (docs/mcp.md)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from maxsim.cli.common import user_errors
from maxsim.cli.registry import app


class Transport(str, Enum):
    stdio = "stdio"
    http = "http"


@app.command()
def mcp(
    index: Path = typer.Argument(..., help="A collection made by `maxsim index` (a folder or a sharded one)."),
    writable: bool = typer.Option(False, "--writable", help="Also offer the tools add, upsert and remove."),
    transport: Transport = typer.Option(Transport.stdio, help="stdio (the host starts this command) or http "
                                                              "(streamable HTTP at http://HOST:PORT/mcp)."),
    host: str = typer.Option("127.0.0.1", help="With --transport http: interface to listen on."),
    port: int = typer.Option(8765, min=0, max=65535, help="With --transport http: TCP port."),
    model: str = typer.Option(None, "--model", "-m", help="Model to use instead of the one the index names."),
):
    """Serve INDEX to MCP clients: the tools search, get, list and explain (and add, upsert, remove with
    --writable). Errors come back as tool errors with the library's message."""
    from maxsim.cli.search import frozen_encoder
    from maxsim.mcp.server import create_server
    from maxsim.models.loading import load_model
    from maxsim.opener import open_collection

    with user_errors(index):
        encoder = load_model(model) if model else None if writable else frozen_encoder(index)[0]
        collection = open_collection(index, model=encoder)
        _ = collection.model  # loaded now, not by the first call
        server = create_server(collection, writable=writable)
    try:
        if transport is Transport.stdio:
            server.run("stdio")
        else:
            typer.echo(f"MCP server for {index} at http://{host}:{port}/mcp "
                       f"({'writable' if writable else 'read-only'})", err=True)
            server.run("streamable-http", host=host, port=port)
    finally:
        collection.close()
