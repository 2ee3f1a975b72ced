"""MUVERA first stage: one fixed dimensional encoding (FDE, ``maxsim.index.fde``) per document in
a faiss index (HNSW or IVF, inner product) proposes candidates; an exact MaxSim re-ranking of
those (``MuveraIndex.search``, or the owner index's own scoring) gives the final order.

Use (an owner index — or the benchmark — keeps the documents' token vectors)::

    stage = MuveraIndex(dim=128, params=MuveraParams())
    stage.fit(sample_documents)          # optional: else the first add trains faiss on its first block
    stage.add(ids, token_vectors)        # token_vectors[i]: (n_tokens_i, dim) float
    stage.remove(["id-7"])
    stage.candidates(queries, n=100, subset=None)      # -> per query up to n ids, best FDE score first
    stage.search(queries, k=10, rerank=exact_index)     # candidates re-ranked by exact MaxSim
    stage.save(folder); stage = MuveraIndex.load(folder)

Labels: the faiss label of a document is its position in insertion order. ``remove`` leaves a
tombstone (every search passes faiss a selector of the live labels); past 25 % tombstones the
faiss index is rebuilt from its stored vectors. A ``subset`` is a selector too; one holding fewer
than 1/8 of the stored vectors (or at most ``n`` documents) is scanned exhaustively instead (a
graph or cell search restricted to a small subset misses members), and a larger one widens
``ef_search`` / ``ivf_nprobe`` by the inverse of its share.

On disk (``save``): the folder layout and atomic commit of ``maxsim.index.storage`` (files under
temporary names, fsynced, renamed; ``manifest.json`` with the settings, a version and every file's
size and CRC-32, all checked on ``load``): the random draws (``.npy``), the faiss index serialized
into a ``.npy`` byte array, and the ids (JSON). No pickle.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import faiss
import numpy as np
import torch

from maxsim.errors import AlreadyExistsError, CorruptedError, InvalidInputError, LimitExceededError, NotFoundError
from maxsim.index.base import Index, Scored
from maxsim.index.checks import check_embeddings, check_ids, check_k, check_queries
from maxsim.index.fde import FDEncoder
from maxsim.index.packed import maxsim_packed
from maxsim.index.packed_numpy import merge_topk
from maxsim.index.storage import (
    FORMAT,
    FORMAT_VERSION,
    FileWriter,
    FolderManifest,
    Manifest,
    check_files,
    load_array,
    load_json,
    new_tag,
)

KIND = "muvera"
VERSION = 1
STORAGE = {"float32": "Flat", "float16": "SQfp16", "int8": "SQ8"}  # faiss codes of the stored FDEs
MAX_WIDTH = 1 << 16  # largest FDE before the final projection (floats per document while encoding)
SCAN_FRACTION = 1 / 8  # a selection below this share of the stored vectors is scanned exhaustively
COMPACT_FRACTION = 0.25  # tombstones beyond this share of the labels: rebuild the faiss index
ADD_BLOCK = 8192  # documents encoded at a time by add (the first block trains faiss when fit was not called)
SCAN_BLOCK = 16384  # vectors reconstructed per block of an exhaustive scan or a rebuild
_RANGES = {"k_sim": (1, 12), "d_proj": (1, 4096), "repetitions": (1, 4096), "final_dim": (1, MAX_WIDTH),
           "hnsw_m": (2, 512), "ef_construction": (1, None), "ef_search": (1, None), "ivf_nlist": (1, None),
           "ivf_nprobe": (1, None), "candidates_multiplier": (1, None), "seed": (0, None)}
_OPTIONAL = ("d_proj", "final_dim", "ivf_nlist")
_CHOICES = {"graph": ("hnsw", "ivf"), "storage": tuple(STORAGE)}


@dataclass(frozen=True)
class MuveraParams:
    """Settings of a ``MuveraIndex``, checked on creation (``InvalidInputError`` naming the field).
    The defaults were measured (docs/index.md, "MUVERA first stage").

    FDE (``maxsim.index.fde``): ``k_sim`` SimHash bits (2^k_sim partitions per repetition);
    ``d_proj`` inner projection per partition (None: none, the token dim); ``repetitions``;
    ``final_dim`` final projection (None: none; the FDE then has 2^k_sim * d_proj * repetitions dims).
    faiss: ``graph`` "hnsw" (``hnsw_m`` links per node, ``ef_construction``; the search beam is
    max(``ef_search``, 2 n) for n candidates) or "ivf" (``ivf_nlist`` cells, None: 4 sqrt(n) for the
    n documents it is trained on, at most n/39; ``ivf_nprobe`` cells searched); ``storage`` of the
    FDEs: "float32", "float16" or "int8" (faiss scalar quantizer, trained on the first documents).
    ``search`` re-ranks ``candidates_multiplier * k`` candidates. ``seed`` of the random draws.
    """

    k_sim: int = 4
    d_proj: int | None = 16
    repetitions: int = 16
    final_dim: int | None = None
    graph: str = "hnsw"
    storage: str = "float16"
    hnsw_m: int = 32
    ef_construction: int = 64
    ef_search: int = 512
    ivf_nlist: int | None = None
    ivf_nprobe: int = 16
    candidates_multiplier: int = 10
    seed: int = 0

    def __post_init__(self):
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if name in _CHOICES:
                if value not in _CHOICES[name]:
                    raise InvalidInputError(f"MuveraParams.{name} must be one of {_CHOICES[name]}, got {value!r}.")
            elif not (value is None and name in _OPTIONAL):
                _check_int(f"MuveraParams.{name}", value, *_RANGES[name])


def _check_int(name: str, value, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InvalidInputError(f"{name} must be an integer {bounds}, got {value!r}.")


class MuveraIndex:
    """FDEs of documents in faiss, under string ids; an in-memory object that saves and loads
    itself. ``encoder``: the random draws (default: drawn from ``params.seed``)."""

    def __init__(self, dim: int, params: MuveraParams | None = None, encoder: FDEncoder | None = None):
        _check_int("dim", dim, 1, None)
        self.dim, self.params = int(dim), params or MuveraParams()
        p = self.params
        width = (1 << p.k_sim) * (p.d_proj or self.dim) * p.repetitions
        if width > MAX_WIDTH:
            raise LimitExceededError(f"MuveraParams: 2^k_sim * (d_proj or dim) * repetitions = {width:,} FDE "
                                     f"dimensions exceed {MAX_WIDTH:,}; lower k_sim, d_proj or repetitions.")
        self.encoder = encoder or FDEncoder.draw(self.dim, p.k_sim, p.d_proj, p.repetitions, p.final_dim, p.seed)
        self._faiss = None  # built by fit (or the first add)
        self._ids: list[str | None] = []  # label -> id; None: removed
        self._labels: dict[str, int] = {}
        self._alive = np.zeros(0, dtype=bool)

    # ------------------------------------------------------------------ contents
    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, doc_id) -> bool:
        return doc_id in self._labels

    def ids(self) -> list[str]:
        """Live ids in insertion order."""
        return [doc_id for doc_id in self._ids if doc_id is not None]

    # ------------------------------------------------------------------ writing
    def fit(self, documents: Sequence[np.ndarray]) -> None:
        """Build the faiss index and train what it needs (IVF cells, the scalar quantizer) on the
        FDEs of ``documents`` (token-vector arrays): a sample of the collection."""
        if self._faiss is not None:
            raise InvalidInputError("this MUVERA index is already trained: fit() comes before the first add().")
        docs = check_embeddings([f"sample {i}" for i in range(len(documents))], documents, self.dim)
        self._train(self.encoder.encode(docs, document=True))

    def _train(self, fde: np.ndarray) -> None:
        if not len(fde):
            raise InvalidInputError("fit() needs at least one document.")
        p = self.params
        nlist = p.ivf_nlist or max(1, min(round(4 * math.sqrt(len(fde))), len(fde) // 39))
        cells = f"HNSW{p.hnsw_m}" if p.graph == "hnsw" else f"IVF{nlist}"
        index = faiss.index_factory(fde.shape[1], f"{cells},{STORAGE[p.storage]}", faiss.METRIC_INNER_PRODUCT)
        if p.graph == "hnsw":
            index.hnsw.efConstruction = p.ef_construction
        else:
            faiss.extract_index_ivf(index).set_direct_map_type(faiss.DirectMap.Array)  # reconstruct by label
        if not index.is_trained:
            index.train(fde)
        self._faiss = index

    def add(self, ids: Sequence[str], embeddings: Sequence[np.ndarray]) -> None:
        """Add documents (``embeddings[i]``: (n_tokens_i, dim) float). Ids must be new."""
        ids = check_ids(ids)
        present = [doc_id for doc_id in ids if doc_id in self._labels]
        if present:
            raise AlreadyExistsError(f"{len(present)} id(s) already in the MUVERA index, e.g. {present[:3]}; "
                                     "remove them first.")
        embeddings = check_embeddings(ids, embeddings, self.dim)
        for a in range(0, len(ids), ADD_BLOCK):  # bounded memory: ADD_BLOCK FDEs at a time
            fde = self.encoder.encode(embeddings[a: a + ADD_BLOCK], document=True)
            if self._faiss is None:
                self._train(fde)
            self._faiss.add(fde)
        self._labels.update(zip(ids, range(len(self._ids), len(self._ids) + len(ids))))
        self._ids.extend(ids)
        self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])

    def remove(self, ids: Sequence[str]) -> None:
        """Remove documents by id; an unknown id raises ``NotFoundError`` and removes nothing."""
        ids = check_ids(ids)
        unknown = [doc_id for doc_id in ids if doc_id not in self._labels]
        if unknown:
            raise NotFoundError(f"{len(unknown)} id(s) not in the MUVERA index, e.g. {unknown[:3]}; nothing removed.")
        for doc_id in ids:
            label = self._labels.pop(doc_id)
            self._ids[label], self._alive[label] = None, False
        if len(self._ids) - len(self._labels) > COMPACT_FRACTION * len(self._ids):
            self._compact()

    def _compact(self) -> None:
        """Rebuild the faiss index from the live labels' stored vectors (labels renumbered)."""
        live = np.nonzero(self._alive)[0]
        fresh = faiss.clone_index(self._faiss)
        fresh.reset()  # keeps the training (cells, quantizer)
        for a in range(0, len(live), SCAN_BLOCK):
            fresh.add(self._faiss.reconstruct_batch(live[a: a + SCAN_BLOCK]))
        self._faiss = fresh
        self._set_ids([self._ids[i] for i in live])

    def _set_ids(self, ids: list[str | None]) -> None:
        self._ids = ids
        self._labels = {doc_id: i for i, doc_id in enumerate(ids) if doc_id is not None}
        self._alive = np.array([doc_id is not None for doc_id in ids], dtype=bool)

    # ------------------------------------------------------------------ reading
    def candidates(self, queries, n: int, subset: Sequence[str] | None = None) -> list[list[str]]:
        """Per query (a list of (n_tokens, dim) arrays) up to ``n`` ids, best FDE inner product
        first; ``subset`` restricts them to those ids (unknown ids raise ``NotFoundError``)."""
        _check_int("n", n, 1, None)
        queries = check_queries(queries, self.dim)
        allowed = self._allowed(subset)
        count = int(allowed.sum())
        if not queries or not count:
            return [[] for _ in queries]
        fde = self.encoder.encode(queries, document=False)
        if count <= n or count < SCAN_FRACTION * len(allowed):
            labels = self._scan(fde, np.nonzero(allowed)[0], n)
        else:
            labels = self._search(fde, allowed, n, len(allowed) / count)
        return [[self._ids[label] for label in row if label >= 0] for row in labels]

    def _allowed(self, subset) -> np.ndarray:
        """Boolean mask over labels of the documents a search may return."""
        if subset is None:
            return self._alive
        if isinstance(subset, str):
            raise InvalidInputError("subset must be a list of ids, not one string.")
        subset = list(subset)
        unknown = [doc_id for doc_id in subset if doc_id not in self._labels]
        if unknown:
            raise NotFoundError(f"subset holds {len(unknown)} id(s) not in the MUVERA index, e.g. {unknown[:3]}.")
        mask = np.zeros(len(self._ids), dtype=bool)
        mask[[self._labels[doc_id] for doc_id in subset]] = True
        return mask

    def _search(self, fde: np.ndarray, allowed: np.ndarray, n: int, widen: float) -> np.ndarray:
        """faiss search restricted to ``allowed`` labels, its beam / probes widened by ``widen``."""
        p = self.params
        bitmap = None if allowed.all() else np.packbits(allowed, bitorder="little")
        selector = None if bitmap is None else faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        if p.graph == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=math.ceil(max(p.ef_search, 2 * n) * widen), sel=selector)
        else:
            nlist = faiss.extract_index_ivf(self._faiss).nlist
            params = faiss.SearchParametersIVF(nprobe=min(nlist, math.ceil(p.ivf_nprobe * widen)), sel=selector)
        return self._faiss.search(fde, n, params=params)[1]

    def _scan(self, fde: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
        """Exhaustive FDE scores over ``labels`` -> (n_queries, min(n, len(labels))) best labels."""
        scores = np.empty((len(fde), len(labels)), dtype=np.float32)
        for a in range(0, len(labels), SCAN_BLOCK):
            block = torch.from_numpy(self._faiss.reconstruct_batch(labels[a: a + SCAN_BLOCK]))
            scores[:, a: a + SCAN_BLOCK] = (torch.from_numpy(fde) @ block.T).numpy()
        return labels[np.argsort(-scores, axis=1, kind="stable")[:, :n]]

    def search(self, queries, k: int, rerank: Index | Callable[[list[str]], list[np.ndarray]],
               subset: Sequence[str] | None = None, n_candidates: int | None = None) -> list[list[Scored]]:
        """Candidates (``n_candidates``, default ``candidates_multiplier * k``) re-ranked by
        ``rerank``: an ``Index`` holding the documents (its ``search`` restricted to the candidates
        scores them: exact MaxSim for an ExactIndex), or a callable ids -> their token vectors,
        scored here by exact MaxSim (ties: better FDE rank first). Per query up to ``k`` ``(id,
        score)`` pairs, best first."""
        k = check_k(k)
        queries = check_queries(queries, self.dim)
        n = self.params.candidates_multiplier * k if n_candidates is None else n_candidates
        out = []
        for q, ids in zip(queries, self.candidates(queries, n, subset)):
            if not ids:
                out.append([])
            elif isinstance(rerank, Index):
                out.append(rerank.search([q], k, subset=ids)[0])
            else:
                out.append(_maxsim_top(q, ids, rerank(ids), k))
        return out

    # ------------------------------------------------------------------ files
    def save(self, folder: str | Path) -> None:
        """Write this index into ``folder`` (created if needed; an earlier save there is replaced)
        as one atomic commit."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = FolderManifest(folder)
        with manifest.lock():
            if (folder / "manifest.json").exists() and Manifest.read(folder).get("kind") != KIND:
                raise AlreadyExistsError(f"{folder} holds another kind of index; save the MUVERA index elsewhere.")
            writer, tag = FileWriter(folder), new_tag()
            arrays = {"simhash": self.encoder.simhash, "inner": self.encoder.inner, "final": self.encoder.final}
            roles = {role: writer.array(f"shared-{tag}-{role}.npy", a) for role, a in arrays.items() if a is not None}
            if self._faiss is not None:
                roles["faiss"] = writer.array(f"seg-{tag}-faiss.npy", faiss.serialize_index(self._faiss))
            roles["ids"] = writer.json(f"seg-{tag}-ids.json", self._ids)
            writer.sync()
            manifest.commit({"format": FORMAT, "format_version": FORMAT_VERSION, "kind": KIND, "version": VERSION,
                             "dim": self.dim, "params": asdict(self.params), "roles": roles, "files": writer.written})

    @classmethod
    def load(cls, folder: str | Path) -> MuveraIndex:
        """Open what ``save`` wrote; every file's size and CRC-32 is checked (``CorruptedError``
        naming the file), an unknown version is refused."""
        folder = Path(folder)
        try:
            body = Manifest.read(folder)
        except FileNotFoundError:
            raise NotFoundError(f"{folder} holds no saved MUVERA index (manifest.json not found).") from None
        if body.get("kind") != KIND:
            raise InvalidInputError(f"{folder} holds a {body.get('kind')!r} index, not a MUVERA index.")
        if body.get("version") != VERSION:
            raise CorruptedError(f"{folder}: MUVERA index version {body.get('version')!r}, this maxsim reads "
                                 f"version {VERSION}; rebuild it (add the documents to a new MuveraIndex, save()).")
        check_files(folder, body["files"], full=True)
        try:
            params = MuveraParams(**body["params"])
        except (TypeError, ValueError) as exc:
            raise CorruptedError(f"{folder / 'manifest.json'}: bad MUVERA settings ({exc}).") from None
        roles = body["roles"]
        arrays = {role: load_array(folder, roles[role], mmap=False) if role in roles else None
                  for role in ("simhash", "inner", "final")}
        index = cls(body["dim"], params, FDEncoder(arrays["simhash"], arrays["inner"], arrays["final"]))
        _check_encoder(folder / roles["simhash"], index)
        if "faiss" in roles:
            index._faiss = faiss.deserialize_index(load_array(folder, roles["faiss"], mmap=False))
        ids = load_json(folder, roles["ids"])
        if not isinstance(ids, list) or not all(i is None or isinstance(i, str) for i in ids):
            raise CorruptedError(f"{folder / roles['ids']}: not a list of ids.")
        index._set_ids(ids)
        stored = 0 if index._faiss is None else index._faiss.ntotal
        if stored != len(index._ids):
            raise CorruptedError(f"{folder / roles['ids']}: {len(index._ids)} ids for {stored} stored vectors.")
        return index


def _maxsim_top(q: np.ndarray, ids: list[str], docs: list[np.ndarray], k: int) -> list[Scored]:
    """The best ``k`` of ``ids`` by exact MaxSim of ``q`` with their token vectors ``docs``."""
    packed = torch.from_numpy(np.concatenate(docs)) if docs else torch.zeros((0, q.shape[1]))
    scores = maxsim_packed([q], packed, np.array([len(d) for d in docs], dtype=np.int64))[0]
    order, best = merge_topk(None, np.arange(len(ids)), scores, k)
    return [(ids[i], float(s)) for i, s in zip(order.tolist(), best.tolist())]


def _check_encoder(path: Path, index: MuveraIndex) -> None:
    """The loaded random draws have the shapes the settings ask for."""
    p, e = index.params, index.encoder
    want = (p.repetitions, index.dim, p.k_sim, p.d_proj or index.dim, p.final_dim or e.width)
    if (e.repetitions, e.dim, e.k_sim, e.block, e.out_dim) != want:
        raise CorruptedError(f"{path}: random draws of shape {(e.repetitions, e.dim, e.k_sim, e.block, e.out_dim)} "
                             f"do not match the settings {want}.")
