"""maxsim.distributed on a real local Ray cluster (2 CPUs): a 300-document Cranfield sample encoded
by 2 workers into 2 shards answers exactly what one index of the same documents answers."""

import dataclasses
import json
import os
import signal

import numpy as np
import pytest

import maxsim
from conftest import CRANFIELD, TINY_MODEL

ray = pytest.importorskip("ray")

from maxsim.distributed import ShardedRetriever, build_collection, shard_of  # noqa: E402
from maxsim.distributed.encode import length_groups, row_size  # noqa: E402
from maxsim.errors import AlreadyExistsError, InvalidInputError, NotFoundError  # noqa: E402
from maxsim.search import Retriever  # noqa: E402

N_DOCS, BATCH = 300, 32
MODEL = str(TINY_MODEL)


@pytest.fixture(scope="module", autouse=True)
def cluster():
    os.environ.setdefault("RAY_worker_niceness", "0")  # as maxsim.distributed.encode.connect does
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # a new cluster
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The first 300 Cranfield documents, each with a metadata field ``group`` (0, 1, 2)."""
    rows = [json.loads(line) for line in (CRANFIELD / "corpus.jsonl").read_text().splitlines()[:N_DOCS]]
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({**row, "group": i % 3}) + "\n" for i, row in enumerate(rows)))
    return path


@pytest.fixture(scope="module")
def queries():
    return [json.loads(line)["text"] for line in (CRANFIELD / "queries.jsonl").read_text().splitlines()[:20]]


def single_index(folder, corpus, index):
    """One retriever over the same documents, added in the build's rows (2 workers) at the workers' one thread."""
    import torch

    from maxsim.io import read_corpus

    docs, threads = read_corpus(corpus), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = Retriever.create(folder, model_name=MODEL, index=index)
        for part in length_groups(docs.texts, range(len(docs)), row_size(len(docs), BATCH, 2)):
            r.add([docs.texts[i] for i in part], ids=[docs.ids[i] for i in part],
                  metadata=[docs.metadata[i] for i in part], batch_size=BATCH)
    finally:
        torch.set_num_threads(threads)
    return r


@pytest.fixture(scope="module")
def exact_pair(tmp_path_factory, corpus):
    root = tmp_path_factory.mktemp("exact")
    out = build_collection(corpus, root / "sharded", model=MODEL, index="exact", workers=2, shards=2, batch_size=BATCH)
    assert out == {**out, "documents": N_DOCS, "shards": 2, "workers": 2, "encoded": N_DOCS}
    return single_index(root / "single", corpus, "exact"), maxsim.open(root / "sharded")


def test_rows_are_length_sorted_groups_of_batches():
    assert row_size(4200, 32, 1) == 256 and row_size(4200, 32, 2) == 256  # ROW_BATCHES batches
    assert row_size(300, 32, 2) == 38 and row_size(1, 32, 8) == 1  # at least 4 rows per worker where possible
    texts = ["a" * n for n in (3, 9, 1, 9, 5)]
    assert length_groups(texts, range(5), 2) == [[1, 3], [4, 0], [2]]  # longest first, ties in order
    assert length_groups(texts, [2, 4], 8) == [[4, 2]]


def assert_same_hits(got, expected):
    """Same ids, texts, metadata and passages in the same order; scores equal to float32 rounding (a BLAS
    product's last bit can depend on the block shapes, which differ between one index and its shards)."""
    assert [[h.id for h in q] for q in got] == [[h.id for h in q] for q in expected]
    np.testing.assert_allclose([h.score for q in got for h in q], [h.score for q in expected for h in q],
                               rtol=2e-6, atol=0)
    strip = lambda hits: [[dataclasses.replace(h, score=0.0) for h in q] for q in hits]  # noqa: E731
    assert strip(got) == strip(expected)


@pytest.mark.parametrize("hybrid", [False, True])
def test_sharded_exact_equals_one_index(exact_pair, queries, hybrid):
    single, sharded = exact_pair
    assert isinstance(sharded, ShardedRetriever)
    expected, got = single.search(queries, k=10, hybrid=hybrid), sharded.search(queries, k=10, hybrid=hybrid)
    assert_same_hits(got, expected)


def test_sharded_filter_subset_get_explain(exact_pair, queries):
    single, sharded = exact_pair
    subset = [str(i) for i in range(1, 120, 3)]
    for kwargs in ({"filter": {"group": 1}}, {"subset": subset}, {"filter": {"group": 2}, "subset": subset}):
        for hybrid in (False, True):
            assert_same_hits(sharded.search(queries[:5], k=7, hybrid=hybrid, **kwargs),
                             single.search(queries[:5], k=7, hybrid=hybrid, **kwargs))
    assert sharded.get("17") == single.get("17")
    assert sharded.explain(queries[0], "17") == single.explain(queries[0], "17")
    assert len(sharded) == N_DOCS
    stats = sharded.stats()
    assert stats["shards"] == 2 and sum(stats["shard_documents"]) == N_DOCS and min(stats["shard_documents"]) > 100
    assert {k: stats[k] for k in ("documents", "passages", "tokens")} == \
        {k: single.stats()[k] for k in ("documents", "passages", "tokens")}
    with pytest.raises(NotFoundError):
        sharded.get("no-such-id")
    with pytest.raises(NotFoundError):
        sharded.search(queries[0], subset=["1", "no-such-id"])
    with pytest.raises(InvalidInputError):
        sharded.search(queries[0], k=0)
    with pytest.raises(AlreadyExistsError, match="'17'"):
        sharded.add(["text"], ids=["new", "17"][1:])


def test_shards_in_ray_actors_answer_the_same(exact_pair, queries):
    _, local = exact_pair
    with ShardedRetriever.open(local.folder, ray_address="local") as remote:
        assert type(remote.shards).__name__ == "RayShards"
        for hybrid in (False, True):
            assert remote.search(queries[:5], k=10, hybrid=hybrid) == local.search(queries[:5], k=10, hybrid=hybrid)
        assert remote.get("17") == local.get("17") and len(remote) == N_DOCS
        with pytest.raises(NotFoundError):
            remote.get("no-such-id")


@pytest.mark.slow  # the default model encodes the 300 documents twice (~3.5 min at load 30)
def test_sharded_plaid_recall_vs_one_plaid(tmp_path, corpus, queries):
    """The default model (unit vectors, as PLAID assumes); the single index adds everything at once, as
    ``maxsim index --index plaid`` does, and trains its own codec on it. Both rank their candidates on
    a float16 copy (exact scores), so that two codecs trained on different samples rank alike."""
    from maxsim.io import read_corpus

    build_collection(corpus, tmp_path / "sharded", model="default", index="plaid", workers=2, shards=2,
                     batch_size=BATCH, rescore="float16")
    docs = read_corpus(corpus)
    single = Retriever.create(tmp_path / "single", model_name="default", index="plaid", rescore="float16")
    single.add(docs.texts, ids=docs.ids, metadata=docs.metadata)
    sharded = maxsim.open(tmp_path / "sharded")
    expected, got = single.search(queries, k=10), sharded.search(queries, k=10)
    recall = np.mean([len({h.id for h in a} & {h.id for h in b}) / 10 for a, b in zip(expected, got)])
    assert recall >= 0.99
    codec = np.load(tmp_path / "sharded" / "codec.npz")
    first, second = (shard.index.codec.centroids for shard in sharded.shards.retrievers)
    assert np.array_equal(first, second)  # both shards adopted the one codec (stored as int8 rows with scales)
    np.testing.assert_allclose(first, codec["centroids"], atol=np.abs(codec["centroids"]).max() / 127)


def holds_each_once(folder, corpus):
    from maxsim.io import read_corpus

    ids = read_corpus(corpus).ids
    with maxsim.open(folder) as sharded:
        assert len(sharded) == len(ids)
        for s, shard in enumerate(sharded.shards.retrievers):
            mine = [i for i in ids if shard_of(i, 2) == s]
            with shard.store.read() as snap:
                assert sorted(snap.present(mine)) == sorted(mine) and snap.counts()["documents"] == len(mine)


def test_killed_encoder_actor_every_document_once(tmp_path, corpus):
    killed, pids = [], set()

    def kill_first_worker(done, total, row):
        pids.update(int(p) for p in row["pid"])
        if not killed:
            killed.append(int(row["pid"][0]))
            os.kill(killed[0], signal.SIGKILL)

    out = build_collection(corpus, tmp_path / "c", model=MODEL, index="exact", workers=2, shards=2,
                           batch_size=BATCH, progress=kill_first_worker)
    assert killed and out["encoded"] == N_DOCS
    holds_each_once(tmp_path / "c", corpus)


def test_rerun_finishes_only_what_is_missing(tmp_path, corpus):
    class Stop(Exception):
        pass

    def stop_after_half(done, total, row):
        if done >= total // 2:
            raise Stop()

    args = dict(model=MODEL, index="exact", workers=2, shards=2, batch_size=BATCH)
    with pytest.raises(Stop):
        build_collection(corpus, tmp_path / "c", commit_docs=BATCH, progress=stop_after_half, **args)
    with pytest.raises(Exception, match="did not finish"):
        maxsim.open(tmp_path / "c")
    with pytest.raises(AlreadyExistsError, match="kind='exact'"):
        build_collection(corpus, tmp_path / "c", **{**args, "index": "plaid"})
    committed = 0
    for s in range(2):
        with Retriever.open(tmp_path / "c" / f"shard-00{s}") as shard:
            committed += len(shard)
    assert committed > 0
    out = build_collection(corpus, tmp_path / "c", **args)
    assert out["encoded"] == N_DOCS - committed
    holds_each_once(tmp_path / "c", corpus)


# every option of `maxsim index`, at a value other than its default (a new option must be added here)
OPTIONS = {"--model": MODEL, "--id-column": "doc", "--text-column": "body", "--title-column": "heading",
           "--metadata-column": "year", "--batch-size": "8", "--device": "cpu", "--dtype": "float32",
           "--backend": "torch", "--pool-factor": "2", "--no-passages": None, "--no-hybrid": None, "--strict": None}
PLAID = {"--index": "plaid", "--nbits": "2", "--n-centroids": "16", "--index-param": "seed=3"}
RAY = ("--ray", "--workers", "--shards", "--address")
PAGES = ("--dpi",)  # page collections only; --ray builds text collections (tests/test_pages_cli.py)


def cli(*argv):
    from typer.testing import CliRunner

    from maxsim.cli import app

    return CliRunner().invoke(app, [str(a) for a in argv])


def flags(options: dict) -> list[str]:
    return [part for flag, value in options.items() for part in ([flag] if value is None else [flag, value])]


def test_every_index_option_is_honoured_with_ray(tmp_path, corpus, queries):
    """The same input built with and without --ray, every option at a non-default value: the same
    settings, documents (ids, titles, metadata columns) and hits."""
    import typer.main

    from maxsim.cli import app

    command = typer.main.get_command(app).commands["index"]
    declared = {p.opts[0] for p in command.params if p.param_type_name == "option"}
    covered = {flag.replace("--no-", "--") for flag in [*OPTIONS, *PLAID, *RAY, *PAGES, "--output"]}
    assert declared == covered
    rows = [json.loads(line) for line in corpus.read_text().splitlines()[:40]]
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps({"doc": f"d{r['_id']}", "body": r["text"], "heading": r["title"],
                                         "year": 1950 + int(r["_id"]) % 30, "extra": "dropped"}) + "\n"
                             for r in rows))
    ray_flags = ["--ray", "--workers", 2, "--shards", 2, "--address", ray.get_runtime_context().gcs_address]
    for extra in ({}, PLAID):
        folder, sharded = tmp_path / f"one{len(extra)}", tmp_path / f"ray{len(extra)}"
        run = cli("index", table, "--output", folder, *flags({**OPTIONS, **extra}))
        assert run.exit_code == 0, run.output
        run = cli("index", table, "--output", sharded, *flags({**OPTIONS, **extra}), *ray_flags)
        assert run.exit_code == 0 and "2 shards" in run.output, run.output
        with maxsim.open(folder) as one, maxsim.open(sharded) as many, \
                Retriever.open(sharded / "shard-000", model=one.model) as shard:
            settings = ("passages", "pool_factor", "kind", "hybrid", "model", "dim")
            assert {k: shard.manifest[k] for k in settings} == {k: one.manifest[k] for k in settings}
            params = [{k: v for k, v in r.index.params.items() if k != "codec"} for r in (shard, one)]
            assert params[0] == params[1] and (not extra or params[0]["nbits"] == 2)
            assert one.manifest["passages"]["split"] is False and one.manifest["pool_factor"] == 2
            assert one.documents(limit=100) == many.documents(limit=100)
            assert one.get("d1").metadata == {"year": 1951} and one.get("d1").text.startswith(rows[0]["title"])
            counts = ("documents", "passages", "tokens", "hybrid")
            assert {k: many.stats()[k] for k in counts} == {k: one.stats()[k] for k in counts}
            if not extra:  # exact: the same hits; PLAID: shards share a codec trained on a sample instead
                assert_same_hits(many.search(queries, k=5), one.search(queries, k=5))


def test_sharding_options_need_ray(tmp_path, corpus):
    run = cli("index", corpus, "--output", tmp_path / "c", "--workers", 2)
    assert run.exit_code == 2 and "add --ray" in run.output and not (tmp_path / "c").exists()
