"""``maxsim serve``: the HTTP service and web page over a retriever folder."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from maxsim.cli.common import BACKEND_HELP, use_backend, user_errors
from maxsim.cli.discovery import announced, server_url
from maxsim.cli.registry import app
from maxsim.server.limits import BATCH_WAIT, LOCK_WAIT, MAX_QUEUE, READERS, WRITER_NICENESS, Limits

DEFAULTS = Limits()
API_KEY_ENV = "MAXSIM_API_KEY"


@app.command()
def serve(
    index: Path = typer.Argument(..., help="A collection made by `maxsim index` (a folder or a sharded one)."),
    model: str = typer.Option(None, "--model", "-m", help="Model to use instead of the one the index names."),
    backend: str = typer.Option(None, "--backend", help=BACKEND_HELP),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
    api_key: str = typer.Option(None, "--api-key", envvar=API_KEY_ENV,
                                help="Require 'Authorization: Bearer KEY' on every route but /health and the page "
                                     "(non-empty, no whitespace)."),
    max_batch: int = typer.Option(DEFAULTS.max_batch, min=1, help="Queries per search / documents per add."),
    max_text_chars: int = typer.Option(DEFAULTS.max_text_chars, min=1, help="Characters per query (and per text "
                                                                             "to rerank)."),
    max_document_chars: int = typer.Option(DEFAULTS.max_document_chars, min=1,
                                           help="Characters per document added or replaced (split into passages)."),
    max_body_bytes: int = typer.Option(DEFAULTS.max_body_bytes, min=1, help="Bytes per request body (bodies over it "
                                                                             "are refused before they are read)."),
    readers: int = typer.Option(READERS, min=1, help="Search batches (and other reads) run at once; more wait in "
                                                      "a queue."),
    threads: int = typer.Option(None, min=1, help="Torch threads per search batch (default: CPU cores / readers, "
                                                   "at least 1, so that concurrent batches do not oversubscribe)."),
    lock_wait: float = typer.Option(LOCK_WAIT, min=0, help="Seconds a write may wait to start (another process "
                                                           "holding the folder's lock, earlier writes); then 503."),
    max_queue: int = typer.Option(MAX_QUEUE, min=1, help="Requests waiting per queue (searches, reads, writes) "
                                                         "before 503 with Retry-After."),
    batch_wait: float = typer.Option(BATCH_WAIT * 1000, min=0, help="Milliseconds a search waits for concurrent "
                                                                   "ones to be answered with it."),
    writer_nice: int = typer.Option(WRITER_NICENESS, min=0, max=19, help="Niceness added to the writer thread: "
                                    "writes use the CPU searches leave (0: an equal share)."),
    ray: bool = typer.Option(False, "--ray", help="A sharded collection: keep its shards in Ray actors (the cluster "
                                                  "at RAY_ADDRESS, else a local one); see docs/scale.md."),
):
    """Serve INDEX: POST /search, GET/POST /documents, GET/PUT/DELETE /documents/{id}, POST /explain,
    POST /rerank, GET /health, GET /stats, the web page at / and the OpenAPI docs at /docs."""
    import torch
    import uvicorn

    from maxsim.models.loading import load_model
    from maxsim.server import LiveRetriever, create_app
    from maxsim.server.app import check_api_key
    from maxsim.server.live import tune_memory

    use_backend(backend)
    if api_key is None and API_KEY_ENV in os.environ:  # set but empty: click reads it as unset
        api_key = os.environ[API_KEY_ENV]
    check_api_key(api_key)  # before the model loads: an empty key must not open the service
    tune_memory()
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // readers))
    address = (os.environ.get("RAY_ADDRESS") or "local") if ray else None
    with user_errors(index):
        live = LiveRetriever(index, load_model(model) if model else None, readers=readers,
                             writer_niceness=writer_nice, ray_address=address, lock_wait=lock_wait,
                             max_queue=max_queue, batch_wait=batch_wait / 1000)
    limits = Limits(max_batch=max_batch, max_text_chars=max_text_chars, max_document_chars=max_document_chars,
                    max_body_bytes=max_body_bytes)
    service = create_app(live, api_key=api_key, limits=limits)
    typer.echo(f"serving {index} ({live.documents} documents) on http://{host}:{port}/ "
               f"(API docs: /docs; {'API key required' if api_key is not None else 'no API key'}; "
               f"{readers} readers x {torch.get_num_threads()} threads)")
    with announced(index, server_url(host, port), auth=api_key is not None):  # for `maxsim search INDEX`
        uvicorn.run(service, host=host, port=port, log_level="warning")
