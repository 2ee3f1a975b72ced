"""The Ray side of a build: connecting, the dataset of documents, the pool of encoder actors.

A dataset row is a group of documents of similar length, fixed by the driver (JSON lists, so
documents with different metadata keys share one Arrow schema); one row is one Ray Data block. Each
encoder actor loads the model once and splits, encodes and pools a row exactly as ``Retriever.add``
of those documents would (``maxsim.search.passages.Encoder`` with the shard's settings: passages
sorted by length, in batches of ``batch_size``): the vectors are the same bits as a ``Retriever.add``
of the same row at the same torch thread count, whatever the number of workers. A row of
``ROW_BATCHES`` batches pads its passages about as little as one ``add`` of the whole collection.
A row comes back with its passage spans and token counts (JSON) and its float32 vectors as bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import numpy as np

from maxsim.errors import InvalidInputError

ROW_BATCHES = 8  # encoder batches per dataset row (fewer where the workers would get under 4 rows each)


def connect(address: str | None = None, num_cpus: int | None = None):
    """``ray`` connected to ``address`` (a running cluster, "auto"), or to a new local one with
    ``num_cpus`` CPUs when None; an existing connection is kept."""
    try:
        import ray
    except ImportError:
        raise ImportError('the distributed build needs Ray: pip install "maxsim[ray]"') from None
    if not ray.is_initialized():
        # Ray runs workers at niceness 15; a local cluster's encoders get the priority `maxsim index` has
        os.environ.setdefault("RAY_worker_niceness", "0")
        # "local": a new cluster even where a stale ray_current_cluster file names an ended one
        local = {} if address else {"address": "local", "num_cpus": num_cpus}
        ray.init(**({"address": address} if address else {}), include_dashboard=False, log_to_driver=False, **local)
    return ray


def encoder_resources(ray, workers: int | None) -> tuple[int, dict]:
    """(number of encoder actors, their resources): one GPU each where the cluster has GPUs, else
    one CPU each; ``workers`` defaults to the GPUs, else the CPUs of the cluster."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if workers is None:
        workers = gpus or max(1, cpus)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInputError(f"workers must be a positive int, got {workers!r}.")
    return workers, ({"num_gpus": 1} if gpus else {"num_cpus": 1})


class DocumentEncoder:
    """Ray Data actor: each row is a group of documents (JSON lists ``positions``, ``ids``, ``texts``,
    ``meta``); adds ``spans``, ``lengths`` (JSON, per document), ``vectors`` (bytes) and ``pid``."""

    def __init__(self, model: str, manifest: dict, device: str | None, dtype: str | None, backend: str | None,
                 threads: int, batch_size: int):
        import torch

        from maxsim.models.loading import load_model
        from maxsim.search.passages import Encoder

        torch.set_num_threads(threads)
        loaded = load_model(model, device, dtype, backend)
        self.encoder = Encoder(lambda: loaded, manifest)
        self.batch_size, self.pid = batch_size, os.getpid()

    def __call__(self, batch: dict) -> dict:
        out = {"spans": [], "lengths": [], "vectors": []}
        for texts in batch["texts"]:
            texts = json.loads(texts)
            encoded = self.encoder.encode(texts, self.batch_size, False)
            out["spans"].append(json.dumps(encoded.spans))
            out["lengths"].append(json.dumps([len(v) for v in encoded.vectors]))
            out["vectors"].append(b"".join(np.ascontiguousarray(v, np.float32).tobytes() for v in encoded.vectors))
        return {**batch, **{key: np.array(value, dtype=object) for key, value in out.items()},
                "pid": np.full(len(batch["texts"]), self.pid, dtype=np.int64)}


def encode_rows(ray, rows: list[dict], model: str, manifest: dict, workers: int, resources: dict,
                device: str | None, dtype: str | None, backend: str | None, threads: int,
                batch_size: int) -> Iterator[dict]:
    """Encode ``rows`` (see ``to_rows``) on a pool of ``workers`` encoder actors; yields each output
    row (one-row numpy columns) as it finishes, in any order. Ray Data restarts a killed actor and
    retries its work (its actor pools' default). A row's vectors do not depend on the worker count
    (each row is encoded whole)."""
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    out = ds.map_batches(DocumentEncoder, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
                         batch_format="numpy",
                         fn_constructor_kwargs={"model": model, "manifest": manifest, "device": device, "dtype": dtype,
                                                "backend": backend, "threads": threads, "batch_size": batch_size},
                         **resources)
    yield from out.iter_batches(batch_size=None, batch_format="numpy")


def row_size(n_docs: int, batch_size: int, workers: int) -> int:
    """Documents per dataset row: ``ROW_BATCHES`` batches, fewer where that would give the
    ``workers`` under 4 rows each (so that they finish together)."""
    return max(1, min(ROW_BATCHES * batch_size, -(-n_docs // (4 * workers))))


def length_groups(texts: list[str], positions, size: int) -> list[list[int]]:
    """``positions`` (into ``texts``) cut into groups of ``size`` documents of similar length
    (longest first; ties in position order): little padding, and the longest rows start first so
    that the workers finish together."""
    order = sorted((int(i) for i in positions), key=lambda i: -len(texts[i]))
    return [order[s: s + size] for s in range(0, len(order), size)]


def to_rows(corpus, positions, size: int) -> list[dict]:
    """The documents at ``positions`` of ``corpus`` as dataset rows of ``size`` documents (see
    ``length_groups``)."""
    out = []
    for part in length_groups(corpus.texts, positions, size):
        out.append({key: json.dumps(value) for key, value in (
            ("positions", part), ("ids", [corpus.ids[i] for i in part]), ("texts", [corpus.texts[i] for i in part]),
            ("meta", [corpus.metadata[i] for i in part]))})
    return out


def decode(batch: dict, dim: int) -> Iterator[dict]:
    """The documents of an output batch of ``encode_rows``: ``{"id", "position" (in the corpus),
    "text", "meta", "spans", "vectors" (one float32 array per passage), "tokens"}``."""
    for i in range(len(batch["ids"])):
        lengths = json.loads(batch["lengths"][i])
        flat = np.frombuffer(batch["vectors"][i], dtype=np.float32).reshape(-1, dim)
        passages = iter(np.split(flat, np.cumsum(lengths)[:-1]) if lengths else [])
        for position, doc_id, text, meta, spans in zip(*(json.loads(batch[key][i]) for key in
                                                          ("positions", "ids", "texts", "meta", "spans"))):
            vectors = [next(passages) for _ in spans]
            yield {"id": doc_id, "position": position, "text": text, "meta": meta, "spans": [tuple(x) for x in spans],
                   "vectors": vectors, "tokens": int(sum(len(v) for v in vectors))}
