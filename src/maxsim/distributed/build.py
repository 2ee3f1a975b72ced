"""``build_collection``: encode a collection on Ray into a sharded collection (see ``collection``).

1. The driver takes the documents read by ``maxsim.io.read_corpus`` (the reader of ``maxsim index``,
   with its columns and strictness) and creates the shard retriever folders (no BM25 of their own).
2. PLAID only: a seeded sample of ``sample_docs`` documents is encoded on the pool and the codec
   (centroids, buckets) is trained on it once (``PlaidIndex.train_codec``), as one index of the
   whole collection would train it; every shard adopts it and never retrains.
3. The documents no shard holds yet are encoded on a pool of encoder actors (Ray Data); the driver
   routes each to its shard (``shard_of``) and commits them in groups of ``commit_docs`` (one
   writer thread per shard). An id already committed or already routed is skipped, so a row Ray
   retried after a worker died lands once; a rerun encodes only what no shard holds.
4. The collection is checked (each shard holds exactly the ids routed to it), then the
   collection-wide BM25 (hybrid) with the state naming it, and ``complete: true``, are written.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from maxsim.distributed import collection as col
from maxsim.distributed.codec import SharedCodec, adopt_codec
from maxsim.distributed.encode import connect, decode, encode_rows, encoder_resources, row_size, to_rows
from maxsim.distributed.lexical import Lexical
from maxsim.errors import AlreadyExistsError, CorruptedError
from maxsim.index import auto_kind, estimate_tokens
from maxsim.io import Corpus, read_corpus
from maxsim.models.loading import load_model
from maxsim.search import Retriever
from maxsim.search.passages import Encoded

SAMPLE_DOCS = 4096  # documents encoded to train the shared PLAID codec
COMMIT_DOCS = 1024  # documents per shard commit


def build_collection(input, output, model: str = "default", index: str = "auto", hybrid: bool = True,
                     shards: int | None = None, workers: int | None = None, address: str | None = None,
                     batch_size: int = 32, device: str | None = None, dtype: str | None = None,
                     backend: str | None = None, threads: int = 1,
                     passages: bool | dict = True, pool_factor: int = 1, sample_docs: int = SAMPLE_DOCS,
                     commit_docs: int = COMMIT_DOCS, progress=None, **index_params) -> dict:
    """Encode every document of ``input`` on Ray into the sharded collection ``output``.

    ``input``: a path ``maxsim.io.read_corpus`` reads, or a ``Corpus`` already read (its ``source``
    is recorded). ``index``: "exact", "plaid" or "auto" (``choose_kind`` for each shard's share of
    ``maxsim.index.estimate_tokens``). ``model``: "default", a model folder or a hub id (loaded by
    every worker). ``workers``: encoder actors (default: the cluster's GPUs, one each, else its CPUs,
    ``threads`` torch threads each).
    ``shards``: retriever folders (default: ``workers``). ``address``: a running Ray cluster (None:
    start a local one, or use the current connection). ``progress(done, total, row)`` is called
    after each encoded row of documents (see ``encode.row_size``). Rerunning with the same
    arguments finishes an interrupted build.
    Returns ``{"documents", "shards", "workers", "encoded", "seconds"}``."""
    start = time.perf_counter()
    corpus = input if isinstance(input, Corpus) else read_corpus(input)
    ray = connect(address)
    ray.data.DataContext.get_current().enable_progress_bars = False
    n_workers, resources = encoder_resources(ray, workers)
    n_shards = col.check_shards(shards or n_workers)
    model = str(Path(model).resolve()) if model != "default" and Path(model).exists() else model
    encoder = load_model(model, "cpu", dtype, backend)  # the driver's: shard writes, the codec's sample
    if index == "auto":  # each shard's share of the collection decides
        index = auto_kind(index, estimate_tokens(corpus.texts, pool_factor=pool_factor) // n_shards, encoder.dim,
                          index_params)
    settings = {"model": model, "kind": index, "index_params": index_params, "hybrid": bool(hybrid),
                "shards": n_shards, "input": str(Path(corpus.source).resolve()), "documents": len(corpus),
                "passages": passages, "pool_factor": pool_factor}
    output = Path(output)
    body = _prepare_folder(output, settings)
    job = _Job(output, corpus, settings, encoder, ray, n_workers, resources,
               {"batch_size": batch_size, "device": device, "dtype": dtype, "backend": backend, "threads": threads},
               progress)
    try:
        if index == "plaid" and not (output / col.CODEC).exists():
            job.train_codec(min(len(corpus), sample_docs), commit_docs)
        encoded = job.encode_missing(commit_docs)
        job.finish(body)
    finally:
        job.close()
    return {"documents": len(corpus), "shards": n_shards, "workers": n_workers, "encoded": encoded,
            "seconds": time.perf_counter() - start}


def _prepare_folder(output: Path, settings: dict) -> dict:
    """The manifest of a new build (written) or of the interrupted one being rerun (checked)."""
    if col.is_collection(output):
        body = col.read_settings(output)
        col.check_rerun(output, body, settings)
        return body
    if output.exists() and any(output.iterdir()):
        raise AlreadyExistsError(f"{output} is not empty: pick a new output folder.")
    output.mkdir(parents=True, exist_ok=True)
    body = col.new_settings(settings)
    col.write_json(output, col.MANIFEST, body)
    return body


class _Job:
    """The driver's state during one build: the corpus, the shard writers, the encoding pool."""

    def __init__(self, output, corpus, settings, model, ray, workers, resources, encode_options, progress):
        self.output, self.corpus, self.settings, self.ray = output, corpus, settings, ray
        self.workers, self.resources, self.options, self.progress = workers, resources, encode_options, progress
        self.model = model
        self.shards = [self._open_shard(i) for i in range(settings["shards"])]
        self.route = [col.shard_of(doc_id, len(self.shards)) for doc_id in corpus.ids]
        self.writers = ThreadPoolExecutor(len(self.shards), thread_name_prefix="maxsim-shard-writer")
        self.seen = self._committed()
        self.buffers: list[list] = [[] for _ in self.shards]
        self.futures: list = []

    def _open_shard(self, i: int):
        folder = self.output / col.shard_name(i)
        s = self.settings
        params = SharedCodec(self.output).shard_params(s["kind"], s["index_params"])
        if (folder / "retriever.json").exists():
            shard = Retriever.open(folder, model=self.model)
            if "codec" in params:  # a rerun: the codec may have been saved after this shard was created
                adopt_codec(shard, params["codec"])
            return shard
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted create holds nothing
        return Retriever.create(folder, self.model, index=s["kind"], hybrid=False, model_name=s["model"],
                                passages=s["passages"], pool_factor=s["pool_factor"], **params)

    def _committed(self) -> set[str]:
        """Ids some shard already holds (an interrupted build's work)."""
        by_shard: list[list[str]] = [[] for _ in self.shards]
        for doc_id, s in zip(self.corpus.ids, self.route):
            by_shard[s].append(doc_id)
        seen: set[str] = set()
        for shard, ids in zip(self.shards, by_shard):
            with shard.store.read() as snap:
                seen.update(snap.present(ids))
        return seen

    # -- encoding -------------------------------------------------------------------------------
    def _encode(self, positions, sink) -> None:
        """Encode the documents at ``positions`` on the pool; ``sink(doc)`` for each, as rows finish."""
        options, done = self.options, 0
        rows = to_rows(self.corpus, positions, row_size(len(positions), options["batch_size"], self.workers))
        if not rows:
            return
        manifest = self.shards[0].manifest
        for row in encode_rows(self.ray, rows, self.settings["model"], manifest, self.workers, self.resources,
                               **options):
            for doc in decode(row, manifest["dim"]):
                sink(doc)
                done += 1
            if self.progress is not None:
                self.progress(done, len(positions), row)

    def train_codec(self, n_sample: int, commit_docs: int) -> None:
        """Encode a seeded sample, train the shared PLAID codec on it, then queue the sample."""
        rng = np.random.default_rng(int(self.settings["index_params"].get("seed", 0)))
        positions = np.sort(rng.choice(len(self.corpus), n_sample, replace=False))
        docs: list[dict] = []
        self._encode(positions, docs.append)
        docs.sort(key=lambda d: d["position"])
        vectors = [v for d in docs for v in d["vectors"]]
        total = int(round(sum(len(v) for v in vectors) / len(docs) * len(self.corpus)))
        codec = SharedCodec(self.output).ensure(self.settings, vectors, total)
        for shard in self.shards:  # created before the codec existed: each adopts it before its first add
            adopt_codec(shard, codec)
        for doc in docs:
            self._queue(doc, commit_docs)

    def encode_missing(self, commit_docs: int) -> int:
        missing = [i for i, doc_id in enumerate(self.corpus.ids) if doc_id not in self.seen]
        self._encode(missing, lambda doc: self._queue(doc, commit_docs))
        self._flush_all()
        return len(missing)

    # -- writing --------------------------------------------------------------------------------
    def _queue(self, doc: dict, commit_docs: int) -> None:
        if doc["id"] in self.seen:  # committed before, or a row Ray ran twice
            return
        self.seen.add(doc["id"])
        s = self.route[doc["position"]]
        self.buffers[s].append(doc)
        if len(self.buffers[s]) >= commit_docs:
            self._flush(s)

    def _flush(self, s: int) -> None:
        docs, self.buffers[s] = self.buffers[s], []
        if docs:
            self.futures.append(self.writers.submit(_commit, self.shards[s], docs))
        while len(self.futures) > 2 * len(self.shards):  # bound the documents waiting in memory
            self.futures.pop(0).result()

    def _flush_all(self) -> None:
        for s in range(len(self.shards)):
            self._flush(s)
        for future in self.futures:
            future.result()
        self.futures = []

    def finish(self, body: dict) -> None:
        """Check that each shard holds exactly its documents, then write ids, BM25 and the manifest."""
        expected = np.bincount(self.route, minlength=len(self.shards))
        for i, shard in enumerate(self.shards):
            if len(shard) != expected[i]:
                raise CorruptedError(f"{shard.folder} holds {len(shard)} documents, expected {expected[i]}: "
                                     "remove the output folder and build again.")
        versions = [shard.version for shard in self.shards]
        Lexical(self.output, self.settings["hybrid"]).publish(versions, self.corpus.ids,
                                                             dict(zip(self.corpus.ids, self.corpus.texts)))
        body.update(complete=True, shard_documents=[int(n) for n in expected])
        col.write_json(self.output, col.MANIFEST, body)

    def close(self) -> None:
        self.writers.shutdown(wait=True)
        for shard in self.shards:
            shard.close()


def _commit(shard, docs: list[dict]) -> None:
    """One commit of ``docs`` (already encoded) to ``shard``."""
    encoded = Encoded([d["spans"] for d in docs], [v for d in docs for v in d["vectors"]], [d["tokens"] for d in docs])
    shard.add([d["text"] for d in docs], ids=[d["id"] for d in docs], metadata=[d["meta"] for d in docs],
              embeddings=encoded)
