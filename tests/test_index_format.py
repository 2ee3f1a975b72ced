"""Index format: format-1 folders open and search, newer ones are refused; block checksums of large
files catch damage before it changes an answer, inside a retriever folder too."""

import json

import numpy as np
import pytest

from conftest import TINY_MODEL
from maxsim.errors import CorruptedError, InvalidInputError
from maxsim.index import ExactIndex, PlaidIndex, blocks, open_index
from maxsim.index.storage import FileWriter, Manifest
from maxsim.index.synthetic import ClusteredCollection
from maxsim.scoring import maxsim

DIM = 16
EXHAUSTIVE = dict(n_ivf_probe=10**6, centroid_score_threshold=-1e9, n_full_scores=10**6)


def write_format1_plaid(folder, docs, ids, copy: bool):
    """A PLAID folder as format 1 wrote it: one set of 2-bit buckets for every dimension (3 cutoffs,
    4 weights), residuals bit-packed first value in the high bits, the float16 copy by default."""
    rng = np.random.default_rng(0)
    x = np.concatenate(docs)
    centroids = x[rng.choice(len(x), 8, replace=False)].astype(np.float16).astype(np.float32)
    codes = (x @ centroids.T).argmax(1)
    r = x - centroids[codes]
    cutoffs = np.quantile(r, [0.25, 0.5, 0.75]).astype(np.float32)
    buckets = (r[..., None] >= cutoffs).sum(-1)
    weights = np.array([r[buckets == b].mean() for b in range(4)], dtype=np.float32)
    packed = (buckets.reshape(len(x), -1, 4) << np.array([6, 4, 2, 0])).sum(-1).astype(np.uint8)
    folder.mkdir()
    w = FileWriter(folder)
    files = {"ids": w.json("seg-a-ids.json", ids), "metadata": None, "tombstones": None,
             "doclens": w.array("seg-a-doclens.npy", np.array([len(d) for d in docs], np.int32)),
             "codes": w.array("seg-a-codes.npy", codes.astype(np.uint16)), "residuals": w.array("seg-a-residuals.npy",
                                                                                                packed)}
    if copy:
        files["vectors"] = w.array("seg-a-vectors.npy", x.astype(np.float16))
    shared = {"centroids": w.array("shared-a-centroids.npy", centroids.astype(np.float16)),
              "buckets": w.array("shared-a-buckets.npy", np.concatenate([cutoffs, weights]))}
    params = {"nbits": 2, "n_centroids": None, "kmeans_niters": 4, "max_points_per_centroid": 32, "n_ivf_probe": None,
              "centroid_score_threshold": None, "n_full_scores": None, "drift_bound": 1.5, "seed": 0, "codec": None,
              "rescore": "float16" if copy else None}
    state = {"n_centroids": 8, "normalized": True, "n_tokens_at_training": len(x),
             "train_mse": float((r ** 2).sum(1).mean()),
             "added_tokens": 0, "added_sse": 0.0}
    body = {"format": "maxsim-index", "format_version": 1, "kind": "plaid", "version": 1, "dim": DIM,
            "params": params, "state": state, "shared_files": shared,
            "segments": [{"tag": "a", "n_docs": len(ids), "n_tokens": len(x), "n_deleted": 0, "files": files}],
            "files": {n: {k: v for k, v in info.items() if k in ("bytes", "crc32")} for n, info in w.written.items()},
            "counts": {"documents": len(ids), "tokens": len(x), "deleted": 0, "segments": 1}}
    Manifest.commit(folder, body)
    return centroids[codes] + weights[buckets]  # what format 1 decoded to, before renormalizing


@pytest.fixture(scope="module")
def collection():
    coll = ClusteredCollection(40, dim=DIM, n_terms=64, doc_tokens=(5, 15), noise=0.3, seed=9)
    return coll.documents(), [f"d{i}" for i in range(40)], coll.queries(6)


def ranked(queries, docs, ids, k=10):
    scores = maxsim(queries, docs)
    order = [sorted(range(len(ids)), key=lambda j: (-row[j], j))[:k] for row in scores]
    return [[(ids[j], float(row[j])) for j in top] for row, top in zip(scores, order)]


def test_format1_plaid_without_copy_ranks_from_its_codes(collection, tmp_path):
    docs, ids, queries = collection
    decoded = write_format1_plaid(tmp_path / "p", docs, ids, copy=False)
    index = open_index(tmp_path / "p")
    split = np.split(decoded, np.cumsum([len(d) for d in docs])[:-1])
    np.testing.assert_allclose(index.get_embeddings(ids[:3])[2], split[2], atol=1e-6)
    got, want = index.search(queries, k=10, **EXHAUSTIVE), ranked(queries, split, ids)
    assert [[i for i, _ in h] for h in got] == [[i for i, _ in h] for h in want]
    np.testing.assert_allclose([s for h in got for _, s in h], [s for h in want for _, s in h], atol=2e-2)
    index.add(["new"], [docs[0]])  # a write commits format 2, the old segment kept as it is
    again = open_index(tmp_path / "p")
    assert Manifest.read(tmp_path / "p")["format_version"] == 2 and again.search([docs[0]], k=1)[0][0][0] in ("d0",
                                                                                                              "new")
    assert again.params.nbits == 2 and again.params.rescore is None


def test_format1_plaid_with_copy_is_exact_on_it(collection, tmp_path):
    docs, ids, queries = collection
    write_format1_plaid(tmp_path / "p", docs, ids, copy=True)
    index = open_index(tmp_path / "p")
    got = index.search(queries, k=10, **EXHAUSTIVE)
    want = ranked(queries, [d.astype(np.float16).astype(np.float32) for d in docs], ids)
    assert [[i for i, _ in h] for h in got] == [[i for i, _ in h] for h in want]
    np.testing.assert_allclose([s for h in got for _, s in h], [s for h in want for _, s in h], rtol=1e-5)


def test_format1_large_file_without_blocks_checked_whole_at_open(collection, tmp_path, monkeypatch):
    docs, ids, queries = collection
    write_format1_plaid(tmp_path / "p", docs, ids, copy=True)
    monkeypatch.setattr(blocks, "SMALL_FILE_BYTES", 1024)  # the copy counts as a large file without blocks
    assert len(open_index(tmp_path / "p").search(queries, k=3)[0]) == 3
    path = tmp_path / "p" / "seg-a-vectors.npy"
    data = bytearray(path.read_bytes())
    data[len(data) - 10] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptedError, match="seg-a-vectors.npy"):
        open_index(tmp_path / "p")


def test_newer_format_refused_naming_version_and_command(collection, tmp_path):
    index = ExactIndex.create(tmp_path / "e", DIM)
    body = Manifest.read(tmp_path / "e")
    body["format_version"] = 99
    Manifest.commit(tmp_path / "e", body)
    with pytest.raises(InvalidInputError, match=r"format version 99.*maxsim index"):
        open_index(tmp_path / "e")
    assert index.kind == "exact"


def overwrite(path, start, n=4000):
    data = bytearray(path.read_bytes())
    data[start: start + n] = bytes(n)  # zeroed: 4,000 overwritten bytes
    path.write_bytes(bytes(data))


@pytest.fixture
def small_blocks(monkeypatch):
    """Files over 1 KiB get 4 KiB block checksums (so a small test index has large files)."""
    monkeypatch.setattr(blocks, "SMALL_FILE_BYTES", 1024)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(blocks.file_checksums, "__defaults__", (4096,))


@pytest.mark.parametrize("kind", ["exact", "plaid", "plaid-copy"])
def test_damaged_block_raises_before_an_answer(collection, tmp_path, small_blocks, monkeypatch, kind):
    """Wherever the damaged block is read: the exact scan, PLAID's codes, or the rows of PLAID's float16
    copy gathered for its final ranking (``maxsim.index.packed.document_rows``)."""
    docs, ids, queries = collection
    big = ClusteredCollection(300, dim=DIM, n_terms=64, doc_tokens=(20, 40), seed=2).documents()
    cls, name, params = {"exact": (ExactIndex, "vectors", {}), "plaid": (PlaidIndex, "residuals", {"nbits": 4}),
                         "plaid-copy": (PlaidIndex, "vectors", {"rescore": "float16"})}[kind]
    index = cls.create(tmp_path / "ix", DIM, **params)
    index.add([f"b{i}" for i in range(300)], big)
    file = next(n for n in index.files if n.endswith(f"-{name}.npy"))
    assert len(index.files[file]["blocks"]) > 4
    overwrite(tmp_path / "ix" / file, index.files[file]["bytes"] // 2)
    again = open_index(tmp_path / "ix")  # sizes match and the first block is intact: opens
    with pytest.raises(CorruptedError, match=f"{file}: bytes .* do not match their checksum"):
        again.search(queries, k=10, **(EXHAUSTIVE if kind != "exact" else {}))
    with pytest.raises(CorruptedError, match=file):
        again.verify()
    monkeypatch.setenv("MAXSIM_INDEX_VERIFY", "1")
    with pytest.raises(CorruptedError, match=file):
        open_index(tmp_path / "ix")


def test_verify_env_applies_inside_a_retriever_folder(tmp_path, tiny_model, small_blocks, monkeypatch):
    from maxsim.search import Retriever

    texts = [f"document number {i} about wings, flow and heat transfer in boundary layers" for i in range(60)]
    with Retriever.create(tmp_path / "r", tiny_model, hybrid=False, model_name=str(TINY_MODEL)) as r:
        r.add(texts)
    files = json.loads(json.dumps(Retriever.open(tmp_path / "r").index.files))
    name = next(n for n, info in files.items() if n.endswith("-vectors.npy") and "blocks" in info)
    overwrite(tmp_path / "r" / "index" / name, files[name]["bytes"] - 5000)
    r = Retriever.open(tmp_path / "r")
    assert r.index is not None  # opening is lazy about large files ...
    with pytest.raises(CorruptedError, match=name):
        r.search("heat transfer")  # ... the damaged block is caught when read
    monkeypatch.setenv("MAXSIM_INDEX_VERIFY", "1")
    with pytest.raises(CorruptedError, match=name):
        _ = Retriever.open(tmp_path / "r").index  # full verification when the index is loaded
