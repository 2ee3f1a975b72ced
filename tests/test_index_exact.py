"""ExactIndex: exact MaxSim against maxsim.scoring, storage, updates, readers during writes."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from maxsim.index import ExactIndex, open_index
from maxsim.scoring import maxsim


def make_docs(n, dim=16, seed=0, max_len=20):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(1, max_len)), dim)).astype(np.float32) for _ in range(n)]


def brute_force(queries, docs, ids, k):
    scores = maxsim(queries, docs)
    out = []
    for row in scores:
        order = sorted(range(len(ids)), key=lambda j: (-row[j], j))[:k]
        out.append([(ids[j], float(row[j])) for j in order])
    return out


@pytest.mark.parametrize("dtype,error", [("float32", 0.0), ("float16", 0.015)])
def test_exact_matches_brute_force(tmp_path, dtype, error):
    """The ids and scores of brute force over the stored (rounded) vectors, to float32 precision; and
    the scores of the unrounded vectors within the rounding's measured error (float16: <= 0.0146 over
    25 queries of 5 seeds)."""
    docs = make_docs(120)
    ids = [f"doc-{i}" for i in range(120)]
    index = ExactIndex.create(tmp_path / "ix", 16, dtype=dtype, chunk_tokens=97)  # many chunks
    index.add(ids[:50], docs[:50])
    index.add(ids[50:], docs[50:])
    queries = make_docs(5, seed=1)
    got = index.search(queries, k=7)
    stored = [d.astype(dtype).astype(np.float32) for d in docs]
    for g, w, unrounded in zip(got, brute_force(queries, stored, ids, 7), brute_force(queries, docs, ids, 7)):
        assert [i for i, _ in g] == [i for i, _ in w] == [i for i, _ in unrounded]
        np.testing.assert_allclose([s for _, s in g], [s for _, s in w], atol=1e-4, rtol=0)
        np.testing.assert_allclose([s for _, s in g], [s for _, s in unrounded], atol=2 * error + 1e-4, rtol=0)
    # a 3-D array of queries works too, and k larger than the collection returns everything
    assert len(index.search(np.stack([q[:1] for q in queries]), k=500)[0]) == 120


def test_reopen_metadata_ids_embeddings(tmp_path):
    docs = make_docs(30)
    ids = [f"d{i}" for i in range(30)]
    index = ExactIndex.create(tmp_path / "ix", 16, dtype="float32")
    index.add(ids, docs, metadata=[{"n": i} if i % 2 else None for i in range(30)])
    again = open_index(tmp_path / "ix")
    assert isinstance(again, ExactIndex) and len(again) == 30 and again.len() == 30
    assert again.ids() == ids
    assert again.metadata("d3") == {"n": 3} and again.metadata("d4") is None
    np.testing.assert_array_equal(again.get_embeddings(["d7"])[0], docs[7])
    assert "d5" in again and "nope" not in again
    with pytest.raises(KeyError, match="nope"):
        again.metadata("nope")


def test_remove_subset_compaction_and_order(tmp_path):
    docs = make_docs(100)
    ids = [f"d{i}" for i in range(100)]
    index = ExactIndex.create(tmp_path / "ix", 16, dtype="float32")
    for s in range(0, 100, 20):
        index.add(ids[s: s + 20], docs[s: s + 20])
    removed = [f"d{i}" for i in range(0, 100, 3)]
    index.remove(removed)  # > 25 % of each segment: segments get compacted
    keep = [i for i in range(100) if f"d{i}" not in removed]
    assert index.ids() == [ids[i] for i in keep]
    queries = make_docs(3, seed=2)
    want = brute_force(queries, [docs[i] for i in keep], [ids[i] for i in keep], 5)
    assert [[i for i, _ in h] for h in index.search(queries, k=5)] == [[i for i, _ in h] for h in want]
    sub = ["d1", "d2", "d4"]
    got = index.search(queries, k=10, subset=sub)
    assert all(sorted(i for i, _ in h) == sorted(sub) for h in got)
    index.compact()
    assert index.stats()["segments"] == 1 and index.ids() == [ids[i] for i in keep]
    # a removed id can be added again
    index.add(["d0"], [docs[0]])
    assert index.ids()[-1] == "d0"
    assert len(open_index(tmp_path / "ix")) == len(keep) + 1


def test_many_small_adds_keep_segments_bounded(tmp_path):
    docs = make_docs(40)
    index = ExactIndex.create(tmp_path / "ix", 16, dtype="float32")
    for i, d in enumerate(docs):
        index.add([f"d{i}"], [d])
    assert index.stats()["segments"] <= ExactIndex.max_segments
    assert index.ids() == [f"d{i}" for i in range(40)]
    want = brute_force(docs[:2], docs, [f"d{i}" for i in range(40)], 3)
    assert [[i for i, _ in h] for h in index.search(docs[:2], k=3)] == [[i for i, _ in h] for h in want]


def test_reader_keeps_working_while_writer_commits(tmp_path):
    docs = make_docs(60)
    ids = [f"d{i}" for i in range(60)]
    writer = ExactIndex.create(tmp_path / "ix", 16, dtype="float32")
    writer.add(ids[:30], docs[:30])
    reader = open_index(tmp_path / "ix")
    before = reader.search(docs[:2], k=5)
    writer.add(ids[30:], docs[30:])
    writer.remove(ids[:20])  # compaction: the files the reader maps are deleted
    assert reader.search(docs[:2], k=5) == before  # snapshot semantics
    assert len(reader) == 30
    assert reader.refresh() and len(reader) == 40
    assert reader.ids() == ids[20:]


def test_two_handles_writing_in_turn(tmp_path):
    a = ExactIndex.create(tmp_path / "ix", 4, dtype="float32")
    b = open_index(tmp_path / "ix")
    a.add(["x"], [np.ones((2, 4))])
    b.add(["y"], [np.ones((2, 4))])  # b picks up a's commit under the lock
    a.add(["z"], [np.ones((2, 4))])
    assert open_index(tmp_path / "ix").ids() == ["x", "y", "z"]
    with pytest.raises(ValueError, match="already"):
        b.add(["z"], [np.ones((2, 4))])


@pytest.mark.parametrize("kernel", ["maxsim_packed", "maxsim_numpy"])
def test_packed_maxsim_equals_scoring_maxsim(kernel, monkeypatch):
    """Both packed kernels (torch, numpy) against ``maxsim.scoring``, windows of 64 vectors included;
    a document or a query without vectors scores 0."""
    from maxsim.index import packed, packed_numpy

    monkeypatch.setattr(packed_numpy, "BLOCK_ROWS", 64)
    monkeypatch.setattr(packed, "BLOCK_ROWS", 64)
    score = getattr(packed if kernel == "maxsim_packed" else packed_numpy, kernel)
    docs = make_docs(40, seed=5) + [np.zeros((0, 16), np.float32)] + make_docs(3, seed=8)
    queries = make_docs(4, seed=6)
    got = score(queries, np.concatenate(docs).astype(np.float16), np.array([len(d) for d in docs]))
    want = maxsim(queries, [d.astype(np.float16).astype(np.float32) for d in docs])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert got.dtype == np.float32 and (got[:, 40] == 0).all()
    if kernel == "maxsim_numpy":
        empty = score([queries[0], np.zeros((0, 16), np.float32), queries[1]], np.concatenate(docs),
                      np.array([len(d) for d in docs]))
        np.testing.assert_allclose(empty[[0, 2]], maxsim([queries[0], queries[1]], docs), rtol=1e-5, atol=1e-4)
        assert (empty[1] == 0).all()


def test_a_process_without_torch_scans_in_numpy(tmp_path):
    """float32 asked for and torch never imported: an exact index is searched (filtered too) without
    importing torch, with the torch scan's ranking and scores."""
    docs, ids = make_docs(120, seed=11), [f"d{i}" for i in range(120)]
    index = ExactIndex.create(tmp_path / "ix", 16)
    index.add(ids[:70], docs[:70])
    index.add(ids[70:], docs[70:])
    queries = np.random.default_rng(12).standard_normal((3, 5, 16)).astype(np.float32)
    np.save(tmp_path / "q.npy", queries)
    script = ("import json, sys, numpy as np\n"
              "from maxsim.index import open_index\n"
              "index, q = open_index(sys.argv[1]), list(np.load(sys.argv[2]))\n"
              "keep = [f'd{i}' for i in range(120) if i % 3]\n"
              "hits = index.search(q, k=7) + index.search(q, k=7, subset=keep)\n"
              "print(json.dumps({'torch': 'torch' in sys.modules, 'hits': hits}))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "ix"), str(tmp_path / "q.npy")],
                          capture_output=True, text=True, env={**os.environ, "MAXSIM_SCAN_DTYPE": "float32"})
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["torch"] is False
    keep = [f"d{i}" for i in range(120) if i % 3]
    want = index.search(list(queries), k=7) + index.search(list(queries), k=7, subset=keep)
    assert [[i for i, _ in h] for h in answer["hits"]] == [[i for i, _ in h] for h in want]
    np.testing.assert_allclose([[s for _, s in h] for h in answer["hits"]], [[s for _, s in h] for h in want],
                               rtol=1e-5)


@pytest.mark.parametrize("scan", ["float32", "bfloat16", "int8", "int8-unpacked", "numpy"])
def test_one_query_and_batched_equal_brute_force(tmp_path, monkeypatch, scan):
    """Every scan (torch float32, bfloat16 and int8 (prepacked blocks where the CPU has them, and
    ``torch._int_mm``), numpy float32), one query per call, all in one call, over a few documents
    (``subset``) and from 4 threads at once: the float32 brute-force top-k."""
    from maxsim.index import exact, packed, packed_int8
    from maxsim.index.packed import scan_dtype
    monkeypatch.setenv("MAXSIM_SCAN_DTYPE", "float32" if scan == "numpy" else scan.removesuffix("-unpacked"))
    monkeypatch.setattr(exact, "numpy_scan", lambda: scan == "numpy")
    if scan == "int8-unpacked":
        monkeypatch.setattr(packed_int8, "available", lambda: False)
    monkeypatch.setattr(packed_int8, "MIN_DOC_VALUES", 1)  # these 64-dim, 1-39 vector documents packed (CPU allowing)
    monkeypatch.setattr(packed, "CONVERT_ROWS", 97)  # scan copies converted in many pieces
    scan_dtype.cache_clear()
    try:
        rng = np.random.default_rng(7)
        centres = rng.standard_normal((40, 64)).astype(np.float32)
        docs = [(centres[rng.integers(0, 40, int(n))] + 0.5 * rng.standard_normal((int(n), 64))).astype(np.float16)
                .astype(np.float32) for n in rng.integers(1, 40, 300)]
        ids = [f"d{i}" for i in range(300)]
        index = ExactIndex.create(tmp_path / "ix", 64, chunk_tokens=500)
        index.add(ids[:200], docs[:200])
        index.add(ids[200:], docs[200:])
        queries = [centres[rng.integers(0, 40, 8)] + 0.3 * rng.standard_normal((8, 64)).astype(np.float32)
                   for _ in range(6)]
        want = brute_force(queries, docs, ids, 10)
        one = [index.search([q], k=10)[0] for q in queries]
        few = list(range(0, 300, 7))  # sparse windows: gathered (a prepacked block, one query: scored whole)
        subset = index.search(queries, k=10, subset=[ids[j] for j in few])
        one_subset = [index.search([q], k=10, subset=[ids[j] for j in few])[0] for q in queries]
        want_few = brute_force(queries, [docs[j] for j in few], [ids[j] for j in few], 10)
        rare = list(range(3, 300, 13))  # gathered for one query too
        one_rare = [index.search([q], k=10, subset=[ids[j] for j in rare])[0] for q in queries]
        want_rare = brute_force(queries, [docs[j] for j in rare], [ids[j] for j in rare], 10)
        fresh = open_index(tmp_path / "ix")  # 4 threads build its scan copy at once, then share it
        with ThreadPoolExecutor(4) as pool:
            threaded = list(pool.map(lambda q: fresh.search([q], k=10)[0], queries * 4))
        for got, expected in ((index.search(queries, k=10), want), (one, want), (subset, want_few),
                              (one_subset, want_few), (one_rare, want_rare), (threaded, want * 4)):
            assert [[i for i, _ in h] for h in got] == [[i for i, _ in h] for h in expected]
            np.testing.assert_allclose([[s for _, s in h] for h in got], [[s for _, s in h] for h in expected],
                                       rtol=1e-5, atol=1e-4)
        if scan.startswith("int8"):
            packed = packed_int8.available() and scan == "int8"
            segments = (*index._segments, *fresh._segments)
            assert all((seg.arrays["scan"].blocks is not None) == packed for seg in segments)
    finally:
        scan_dtype.cache_clear()


def test_segments_packed_from_4096_values_per_document(monkeypatch):
    """The rule measured in ``maxsim.index.packed_int8``: dims x vectors per document >= 4,096 (the
    reference model's 128 dims from 32 vectors per document on), where the CPU has the operator."""
    from maxsim.index import packed_int8

    monkeypatch.setattr(packed_int8, "available", lambda: True)
    assert packed_int8.used(128, 32) and packed_int8.used(384, 10.7) and packed_int8.used(32, 128)
    assert not packed_int8.used(128, 31.9) and not packed_int8.used(64, 30) and not packed_int8.used(384, 10)
    monkeypatch.setattr(packed_int8, "available", lambda: False)
    assert not packed_int8.used(384, 180)


def test_prepacked_int8_blocks_score_as_the_int8_rows(monkeypatch):
    """A prepacked block's scores equal ``maxsim_scan`` over the same int8 rows and scales, each
    per-document maximum rounded to bfloat16 (the products' output): documents without vectors (0; a
    segment of them only: one empty block), one longer than a block (alone in its own), short blocks
    padded to a multiple of PACK_STEP, every similarity negative (the padding rows' zeros do not
    count; its maximum is the negative nearest 0), queries spread over several products."""
    import torch

    from maxsim.index import packed_int8
    from maxsim.index.packed import maxsim_scan, padded_queries, quantized

    if not packed_int8.available():
        pytest.skip("no prepacked int8 product on this CPU / torch build")
    monkeypatch.setattr(packed_int8, "PACK_COLUMNS", 16)
    monkeypatch.setattr(packed_int8, "PACK_STEP", 16)  # short blocks padded to multiples of 16 rows
    rng = np.random.default_rng(5)
    lengths = np.array([5, 0, 30, 100, 7, 0, 20, 40, 3])
    vectors = rng.standard_normal((int(lengths.sum()), 32)).astype(np.float32)
    q = np.abs(rng.standard_normal((40, 32))).astype(np.float32)
    vectors[lengths[:2].sum(): lengths[:3].sum()] = -np.abs(vectors[lengths[:2].sum(): lengths[:3].sum()])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    blocks, max_norm, max_scale = packed_int8.pack(vectors, offsets, lengths, block_rows=64)
    assert [b.docs for b in blocks] == [(0, 3), (3, 4), (4, 7), (7, 9)]
    assert [b.n_rows for b in blocks] == [35, 100, 27, 43] and [len(b.scales) for b in blocks] == [48, 128, 32, 48]
    assert max_norm == pytest.approx(np.linalg.norm(vectors, axis=1).max(), rel=1e-6)
    widths = [8, 25, 7]
    q_rows, q_scales = quantized(padded_queries(torch.from_numpy(q)))
    rows, scales = quantized(torch.from_numpy(vectors.copy()))
    want = maxsim_scan(q_rows, widths, rows, lengths, (scales, q_scales[:, 0]))
    x, column_scales = packed_int8.query_rows(q_rows), q_scales[:40, 0].numpy()
    got = np.concatenate([b.scores(x, column_scales, np.array([0, 8, 33])) for b in blocks], axis=1)
    assert got[:, 2].max() < 0 and (got[:, [1, 5]] == 0).all()
    products = (q_rows[:40].float() @ rows.float().T * scales.T).numpy()  # (query vectors, tokens)
    maxima = np.stack([products[:, a:b].max(1) if b > a else np.zeros(40, np.float32)
                       for a, b in zip(offsets[:-1], offsets[1:])], axis=1)
    rounded = torch.from_numpy(maxima).bfloat16().float().numpy() * column_scales[:, None]
    np.testing.assert_allclose(got, np.add.reduceat(rounded, [0, 8, 33], axis=0), rtol=1e-6, atol=1e-6)
    bound = 2.0 ** -9 * np.add.reduceat(np.abs(maxima) * column_scales[:, None], [0, 8, 33], axis=0)
    assert (np.abs(got - want) <= bound + 1e-6).all() and np.abs(got - want).max() > 0
    assert max_scale == pytest.approx(float(scales.max()), rel=1e-6)
    empty, _, _ = packed_int8.pack(vectors[:0], np.zeros(3, np.int64), np.zeros(2, np.int64), block_rows=64)
    assert len(empty) == 1 and (empty[0].scores(x, column_scales, np.array([0, 8, 33])) == 0).all()


@pytest.mark.parametrize("lengths", [[5, 7, 6, 0, 5, 7], [1, 40, 0, 2, 1]])  # similar: one gather; uneven: fallback
def test_segment_max_sum_is_the_per_document_max(lengths):
    import torch

    from maxsim.index.packed import segment_max_sum

    rng = np.random.default_rng(3)
    sim = rng.standard_normal((sum(lengths), 6)).astype(np.float32)
    widths = [2, 4]
    got = segment_max_sum(torch.from_numpy(sim), np.array(lengths), widths)
    starts = np.cumsum([0, *lengths])
    for d, n in enumerate(lengths):
        best = sim[starts[d]: starts[d] + n].max(0) if n else np.zeros(6, np.float32)
        np.testing.assert_allclose(got[:, d], [best[:2].sum(), best[2:].sum()], rtol=1e-6)


@pytest.mark.parametrize("dim,norms", [(16, "varied"), (128, "varied"), (384, "unit"), (384, "varied")])
def test_approximate_scans_stay_within_their_allowance(tmp_path, dim, norms):
    """The int8 and bfloat16 scans' MaxSim scores against float32 brute force, on vectors with an
    outlier dimension, unit or widely varying norms: every error within half of ``scan_allowance``
    (measured: at most 0.18 of it), so re-scoring within twice the allowance keeps the exact top k."""
    import torch

    from maxsim.index import exact_scan
    from maxsim.index.packed import scan_allowance

    rng = np.random.default_rng(dim)
    docs = []
    for _ in range(200):
        d = rng.standard_normal((int(rng.integers(1, 50)), dim)).astype(np.float32)
        d = d / np.linalg.norm(d, axis=1, keepdims=True) if norms == "unit" else \
            d * np.exp(rng.standard_normal((len(d), 1))).astype(np.float32)
        d[:, 0] *= 4  # an outlier dimension
        docs.append(d.astype(np.float16).astype(np.float32))
    index = ExactIndex.create(tmp_path / "ix", dim)
    index.add([str(i) for i in range(200)], docs)
    queries = [rng.standard_normal((int(rng.integers(4, 33)), dim)).astype(np.float32) for _ in range(12)]
    want = maxsim(queries, docs)
    for dtype in (torch.int8, torch.bfloat16):
        with torch.inference_mode():  # as ``exact_scan.search`` runs it
            scanned = exact_scan.scan(index, queries, 200, np.ones(200, bool), dtype)
        copy = index._segments[0].arrays["scan"]
        for q, w, (found, scores) in zip(queries, want, scanned):
            q_scale = float((np.abs(q).max(1) / 127).sum())
            allowance = scan_allowance(dtype, copy.max_norm, copy.max_scale, float(np.linalg.norm(q, axis=1).sum()),
                                       q_scale)
            assert len(found) == 200 and np.abs(scores - w[found]).max() <= 0.5 * allowance, dtype


def test_the_scan_dtype_is_timed_once_per_machine(tmp_path, monkeypatch):
    """The timing's answer goes to the cache folder; a later process reads it instead of timing; a
    damaged cache file is timed again and rewritten; a doubtful timing is not kept; MAXSIM_SCAN_DTYPE
    still wins."""
    import torch

    from maxsim.index import packed

    monkeypatch.setenv("MAXSIM_CACHE", str(tmp_path))
    monkeypatch.delenv("MAXSIM_SCAN_DTYPE", raising=False)
    path = tmp_path / packed.SCAN_DTYPE_FILE
    packed.scan_dtype.cache_clear()
    try:
        timed = packed.scan_dtype()
        saved = json.loads(path.read_text())
        assert list(saved.values()) == [str(timed).removeprefix("torch.")]
        other = "float32" if saved[next(iter(saved))] != "float32" else "int8"
        path.write_text(json.dumps({next(iter(saved)): other, "another-machine": "bfloat16"}))
        packed.scan_dtype.cache_clear()
        assert str(packed.scan_dtype()) == f"torch.{other}"  # the file's answer
        path.write_text('{"truncated')
        packed.scan_dtype.cache_clear()
        again = packed.scan_dtype()  # timed again: the same answer unless the timing is a near tie
        assert json.loads(path.read_text()) == {next(iter(saved)): str(again).removeprefix("torch.")}
        path.unlink()  # a timing near the 1.5x the choice turns on is not kept; a clear one is
        monkeypatch.setattr(packed, "_timed_scan_dtype", lambda: (torch.int8, 1.6))
        packed.scan_dtype.cache_clear()
        assert packed.scan_dtype() == torch.int8 and not path.exists()
        monkeypatch.setattr(packed, "_timed_scan_dtype", lambda: (torch.int8, 3.0))
        packed.scan_dtype.cache_clear()
        assert packed.scan_dtype() == torch.int8 and json.loads(path.read_text()) == {next(iter(saved)): "int8"}
        monkeypatch.setenv("MAXSIM_SCAN_DTYPE", "bfloat16")
        packed.scan_dtype.cache_clear()
        assert str(packed.scan_dtype()) == "torch.bfloat16"
    finally:
        packed.scan_dtype.cache_clear()


@pytest.mark.parametrize("kind", ["exact", "plaid"])
def test_warm_pays_the_one_offs_and_changes_no_result(tmp_path, monkeypatch, kind):
    """``warm()`` builds what the first search would (the exact scan's int8 copy of every segment)
    and results are those of an index that was not warmed; an empty index warms without error."""
    from maxsim.index import KINDS, packed

    monkeypatch.setenv("MAXSIM_SCAN_DTYPE", "int8")
    packed.scan_dtype.cache_clear()
    try:
        empty = KINDS[kind].create(tmp_path / "empty", 16)
        empty.warm()
        docs, ids = make_docs(300), [f"d{i}" for i in range(300)]
        index = KINDS[kind].create(tmp_path / "ix", 16)
        index.add(ids[:150], docs[:150])
        index.add(ids[150:], docs[150:])
        queries = make_docs(4, seed=3)
        cold = open_index(tmp_path / "ix").search(queries, k=5)
        warmed = open_index(tmp_path / "ix")
        assert all("scan" not in seg.arrays for seg in warmed._segments)
        warmed.warm()
        if kind == "exact":
            assert [str(seg.arrays["scan"].dtype) for seg in warmed._segments] == ["torch.int8"] * 2
        assert warmed.search(queries, k=5) == cold
    finally:
        packed.scan_dtype.cache_clear()


def test_maxsim_documents_scores_candidates_in_windows(monkeypatch):
    """A re-score of chosen documents of a float16 segment (out of order, one empty, one longer than a
    window), torch and numpy: MaxSim of the float32 vectors, BLOCK_ROWS vectors gathered at a time (the
    torch scratch buffers stay that size)."""
    from maxsim.index import packed, packed_numpy

    monkeypatch.setattr(packed, "BLOCK_ROWS", 50)
    monkeypatch.setattr(packed_numpy, "BLOCK_ROWS", 50)
    rng = np.random.default_rng(3)
    lengths = np.array([7, 0, 30, 80, 12, 25, 3])
    vectors = rng.standard_normal((int(lengths.sum()), 16)).astype(np.float16)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    docs = np.array([5, 3, 1, 0, 2, 6])
    queries = [rng.standard_normal((4, 16)).astype(np.float32), rng.standard_normal((9, 16)).astype(np.float32)]
    want = maxsim(queries, [vectors[offsets[d]: offsets[d + 1]].astype(np.float32) for d in docs])

    def in_a_fresh_thread():  # its own scratch buffers
        return packed.maxsim_documents(queries, vectors, offsets, docs), \
            getattr(packed._BUFFERS, "rows_torch.float32").numel()

    with ThreadPoolExecutor(1) as pool:
        got, rows = pool.submit(in_a_fresh_thread).result()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert rows <= 80 * 16  # the longest document alone (145 vectors chosen)
    np.testing.assert_allclose(packed_numpy.maxsim_documents_numpy(queries, vectors, offsets, docs), want,
                               rtol=1e-5, atol=1e-5)
