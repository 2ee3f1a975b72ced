"""Page models (ColPali, ColQwen2, ColModernVBert) against sentence-transformers 6.2 on random checkpoints
built here (tests/page_checkpoints.py): vectors, scores, layouts, patch grids, pooling, inputs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_MODEL
from maxsim import ModelLoadError, MultiVectorEncoder
from maxsim.errors import InvalidInputError
from maxsim.io.pages import PageRef
from maxsim.models.loading import load_model
from maxsim.models.pages import PageEncoder, PatchGrid
from maxsim.models.pooling import pool_embeddings
from page_checkpoints import FAMILIES, build

st = pytest.importorskip("sentence_transformers")

QUERIES = ["what is the revenue in 2023", "chart", "where is the table of quarterly sales by region"]
SIZES = [(40, 30), (57, 39), (100, 30), (30, 90), (64, 64)]  # (width, height): tall, wide and square pages


def pages(seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in SIZES]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """family -> (transformers folder, sentence-transformers 6 folder written by sentence-transformers)."""
    root = tmp_path_factory.mktemp("page-models")
    folders = {}
    for family in FAMILIES:
        native = build(family, root / f"{family}-hf")
        st.MultiVectorEncoder(str(native), device="cpu").save(str(root / f"{family}-st"))
        folders[family] = (native, root / f"{family}-st")
    return folders


def st_model(folder):
    return st.MultiVectorEncoder(str(folder), device="cpu")


def st_forward(model, features, task):
    """sentence-transformers' own modules on prepared features -> scored vectors per row."""
    with torch.inference_mode():
        out = model.forward({**features}, task=task)
    return [e[m.bool()].numpy() for e, m in zip(out["token_embeddings"], out["attention_mask"])]


def st_pages(model, family, images):
    """sentence-transformers 6.2's page vectors; ColModernVBert: its modules on inputs with the visual
    prompt (its processor call has none, and the model then fails on pages)."""
    if family != "colmodernvbert":
        return [x.numpy() for x in model.encode_document(images, batch_size=2)]
    processor = model[0].processor
    return [st_forward(model, dict(processor.process_images([image])), "document")[0] for image in images]


def st_queries(model, family, texts):
    if family != "colmodernvbert":
        return [x.numpy() for x in model.encode_query(texts)]
    processor = model[0].processor
    return [st_forward(model, dict(processor.process_queries([text])), "query")[0] for text in texts]


def assert_close(ours, theirs, atol=1e-5):
    assert [x.shape for x in ours] == [x.shape for x in theirs]
    for x, y in zip(ours, theirs):
        np.testing.assert_allclose(x, y, atol=atol)


@pytest.mark.parametrize("family", FAMILIES)
def test_vectors_and_scores_equal_sentence_transformers(family, checkpoints):
    _, st_folder = checkpoints[family]
    ours = PageEncoder(st_folder, device="cpu", dtype="float32")
    theirs = st_model(st_folder)
    assert (ours.layout, ours.family, ours.modality, ours.dim) == ("sentence-transformers-6", family, "image", 16)
    documents, queries = ours.encode_document(pages(), batch_size=2), ours.encode_query(QUERIES)
    assert all(d.dtype == np.float32 and d.shape[1] == 16 for d in documents)
    st_documents, st_query_vectors = st_pages(theirs, family, pages()), st_queries(theirs, family, QUERIES)
    assert_close(documents, st_documents)
    assert_close(queries, st_query_vectors)
    np.testing.assert_allclose(ours.similarity(queries, documents),
                               theirs.similarity([torch.from_numpy(q) for q in st_query_vectors],
                                                 [torch.from_numpy(d) for d in st_documents]).numpy(), atol=1e-4)


def test_colmodernvbert_queries_keep_the_augmentation_tokens_sentence_transformers_drops(checkpoints):
    _, st_folder = checkpoints["colmodernvbert"]
    ours = PageEncoder(st_folder, device="cpu", dtype="float32").encode_query(QUERIES)
    plain = st_model(st_folder).encode_query(QUERIES)  # the processor's __call__: no suffix
    assert [len(x) - len(y) for x, y in zip(ours, plain)] == [10] * len(QUERIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_transformers_folder_loads_as_sentence_transformers_reads_it(family, checkpoints):
    native, st_folder = checkpoints[family]
    bare, saved = PageEncoder(native, device="cpu"), PageEncoder(st_folder, device="cpu")
    assert bare.layout == "transformers"
    assert_close(bare.encode_document(pages()), saved.encode_document(pages()), atol=0)
    assert_close(bare.encode_query(QUERIES), saved.encode_query(QUERIES), atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_sentence_transformers_loads_what_we_save(family, checkpoints, tmp_path):
    ours = PageEncoder(checkpoints[family][0], device="cpu", dtype="float32")
    ours.save(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "sentence_bert_config.json").read_text())["transformer_task"] == "retrieval"
    theirs = st_model(tmp_path / "saved")
    assert_close(ours.encode_document(pages()), st_pages(theirs, family, pages()))
    assert_close(ours.encode_query(QUERIES), st_queries(theirs, family, QUERIES))
    again = PageEncoder(tmp_path / "saved", device="cpu")
    assert_close(again.encode_query(QUERIES), ours.encode_query(QUERIES), atol=0)


def test_load_model_picks_the_encoder_by_the_folder_files(checkpoints):
    native, st_folder = checkpoints["colqwen2"]
    for folder in (native, st_folder):
        model = load_model(str(folder), device="cpu")
        assert isinstance(model, PageEncoder) and model.modality == "image"
    text_model = load_model(str(TINY_MODEL), device="cpu")
    assert isinstance(text_model, MultiVectorEncoder) and text_model.modality == "text"
    with pytest.raises(ModelLoadError, match="page-retrieval model"):
        MultiVectorEncoder(st_folder)
    with pytest.raises(ModelLoadError, match="not a page-retrieval model"):
        PageEncoder(TINY_MODEL)


@pytest.fixture(scope="module")
def local_models(tmp_path_factory):
    """family -> a model whose attention outputs are zero: each vector sees its own token only."""
    root = tmp_path_factory.mktemp("local-page-models")
    return {f: PageEncoder(build(f, root / f, local=True), device="cpu", dtype="float32") for f in FAMILIES}


@pytest.mark.parametrize("family,size", [("colpali", (32, 32)), ("colqwen2", (48, 32)), ("colmodernvbert", (64, 32))])
def test_each_grid_cell_is_the_vector_of_its_page_region(family, size, local_models):
    """Inverting the pixels of one cell's region changes that cell's vector and no other cell's."""
    model = local_models[family]
    width, height = size  # the processor's own input size: no resampling spreads a change
    base = np.random.default_rng(3).integers(0, 255, (height, width, 3), dtype=np.uint8)
    page = model.encode_pages([Image.fromarray(base)])[0]
    grid = page.grid
    assert {"colpali": (4, 4), "colqwen2": (2, 3), "colmodernvbert": (2, 4)}[family] == (grid.rows, grid.cols)
    assert grid.patches[grid.cells.ravel()].all() and len(set(grid.cells.ravel().tolist())) == grid.cells.size
    step_h, step_w = height // grid.rows, width // grid.cols
    for r in range(grid.rows):
        for c in range(grid.cols):
            image = base.copy()
            region = image[r * step_h:(r + 1) * step_h, c * step_w:(c + 1) * step_w]
            region[:] = 255 - region
            changed = np.abs(model.encode_pages([Image.fromarray(image)])[0].vectors - page.vectors).max(1) > 1e-6
            assert set(np.flatnonzero(changed[grid.cells.ravel()])) == {r * grid.cols + c}


@pytest.mark.parametrize("family", FAMILIES)
def test_patches_are_the_image_tokens(family, checkpoints):
    model = PageEncoder(checkpoints[family][0], device="cpu")
    page = model.encode_pages(pages()[2:3])[0]
    features = model.backbone.prepare_images(pages()[2:3])
    image_tokens = int((features["input_ids"][0] == model.backbone.image_token_id).sum())
    assert len(page.grid.patches) == len(page.vectors) and page.grid.patches.sum() == image_tokens
    global_view = getattr(model.processor, "image_seq_len", 0)  # ColModernVBert's whole-page view
    assert page.grid.cells.size == image_tokens - global_view


def test_pooling_merges_vectors_and_keeps_the_grid(checkpoints):
    model = PageEncoder(checkpoints["colqwen2"][0], device="cpu")
    full = model.encode_pages(pages())
    pooled = model.encode_pages(pages(), pool_factor=2)
    expected = pool_embeddings([p.vectors for p in full], 2, protected_tokens=0)
    assert_close([p.vectors for p in pooled], expected)
    assert_close(model.encode_document(pages(), pool_factor=2), expected, atol=0)
    query = model.encode_query(["quarterly sales"])[0]
    for before, after in zip(full, pooled):
        assert after.grid.cells.shape == before.grid.cells.shape and len(after.vectors) <= len(before.vectors) // 2 + 1
        # each cell now reads the pooled vector its patch was merged into
        heat = after.grid.heatmap(query @ after.vectors.T)
        np.testing.assert_allclose(heat, (query @ after.vectors.T)[:, after.grid.cells], atol=0)
        assert after.grid.patches[after.grid.cells.ravel()].all()


def test_a_checkpoint_with_token_pooling_pools_as_sentence_transformers(checkpoints, tmp_path):
    from sentence_transformers.multi_vector_encoder.modules import HierarchicalTokenPooling as STPooling

    theirs = st_model(checkpoints["colpali"][1])
    theirs.append(STPooling(2, num_protected_tokens=1))
    theirs.save(str(tmp_path / "pooled"))
    ours = PageEncoder(tmp_path / "pooled", device="cpu", dtype="float32")
    assert ours.pooling is not None and ours.pooling.pool_factor == 2
    assert_close(ours.encode_document(pages(), batch_size=2), st_pages(theirs, "colpali", pages()))
    ours.save(tmp_path / "again")
    modules = json.loads((tmp_path / "again" / "modules.json").read_text())
    assert modules[-1]["type"].endswith("HierarchicalTokenPooling")


def test_patch_grid_round_trips_and_checks_shapes():
    grid = PatchGrid(np.array([[0, 1], [2, -1]], dtype=np.int32), np.array([True, True, True, False]))
    again = PatchGrid.from_dict(json.loads(json.dumps(grid.to_dict())))
    assert np.array_equal(again.cells, grid.cells) and np.array_equal(again.patches, grid.patches)
    heat = grid.heatmap(np.arange(8, dtype=np.float32).reshape(2, 4))
    assert heat.shape == (2, 2, 2) and heat[1, 0, 1] == 5 and np.isnan(heat[0, 1, 1])
    with pytest.raises(InvalidInputError, match="shape"):
        grid.heatmap(np.zeros((2, 3)))


def test_image_files_paths_and_bad_inputs(checkpoints, tmp_path):
    model = PageEncoder(checkpoints["colpali"][0], device="cpu")
    images = pages()[:3]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"p{i}.png")
        image.save(paths[-1])
    from_images = model.encode_document(images)
    assert_close(model.encode_document([str(p) for p in paths]), from_images, atol=0)
    assert_close(model.encode_document([PageRef.of_image(p) for p in paths]), from_images, atol=0)
    assert model.encode_document(str(paths[0])).shape == from_images[0].shape
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InvalidInputError, match="broken.png"):
        model.encode_document([str(paths[0]), str(tmp_path / "broken.png")])
    with pytest.raises(InvalidInputError, match="missing.png"):
        model.encode_document([str(tmp_path / "missing.png")])
    with pytest.raises(InvalidInputError, match="images\\[0\\] is int"):
        model.encode_document([3])
    with pytest.raises(InvalidInputError, match="batch_size"):
        model.encode_document(images, batch_size=0)
    with pytest.raises(InvalidInputError, match="not str"):
        model.encode_query(["fine", None])


def test_batching_dtype_progress_and_padding(checkpoints, capsys):
    model = PageEncoder(checkpoints["colmodernvbert"][0], device="cpu")
    one_by_one = model.encode_document(pages(), batch_size=1, show_progress_bar=True)
    assert "encode pages" in capsys.readouterr().err
    assert_close(model.encode_document(pages(), batch_size=5), one_by_one)
    padded, mask = model.encode_document(pages(), pad=True)
    assert padded.shape[0] == len(SIZES) and mask.sum() == sum(len(x) for x in one_by_one)
    tensors = model.encode_query(QUERIES, convert_to_tensor=True)
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.float32 for t in tensors)
    model.set_dtype("bfloat16")
    low = model.encode_document(pages())
    assert model.precision == "bfloat16" and all(x.dtype == np.float32 for x in low)
    assert max(float(np.abs(x - y).max()) for x, y in zip(low, one_by_one)) < 0.1


def test_maxsim_evaluate_scores_a_page_model_on_a_beir_folder_of_page_images(checkpoints, tmp_path, monkeypatch):
    """The command docs/pages.md gives for measuring quality: corpus texts are page image paths."""
    from typer.testing import CliRunner

    from maxsim.cli import app
    from maxsim.evaluation import InformationRetrievalEvaluator, load_beir_folder

    (tmp_path / "pages").mkdir()
    rows, qrels = [], ["query-id\tcorpus-id\tscore"]
    for i, image in enumerate(pages()):
        image.save(tmp_path / "pages" / f"d{i}.png")
        rows.append(json.dumps({"_id": f"d{i}", "text": f"pages/d{i}.png"}))
        qrels.append(f"q{i % 3}\td{i}\t1")
    (tmp_path / "corpus.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps({"_id": f"q{i}", "text": q})
                                                      for i, q in enumerate(QUERIES)) + "\n")
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "metrics.json"
    folder = checkpoints["colpali"][1]
    result = CliRunner().invoke(app, ["evaluate", str(folder), "--data", ".", "--batch-size", "2", "--device", "cpu",
                                      "--dtype", "float32", "--output", str(out)])
    assert result.exit_code == 0, result.output
    model = PageEncoder(folder, device="cpu", dtype="float32")
    evaluator = InformationRetrievalEvaluator(*load_beir_folder(tmp_path), batch_size=2)
    name = tmp_path.name
    assert json.loads(out.read_text())[f"{name}_MaxSim_ndcg@10"] == pytest.approx(evaluator(model)["MaxSim_ndcg@10"])

    class Pooled(PageEncoder):  # the docs' way to evaluate pooled pages
        def encode_document(self, images, **kwargs):
            return super().encode_document(images, pool_factor=3, **kwargs)

    ranking = evaluator.rank(Pooled(folder, device="cpu", dtype="float32"))
    documents = dict(zip(evaluator.doc_ids, pool_embeddings(model.encode_document(pages()), 3, protected_tokens=0)))
    for query_id, hits in ranking.items():
        query = model.encode_query(evaluator.queries[query_id])
        assert [score for _, score in hits] == pytest.approx(
            [float((query @ documents[doc_id].T).max(1).sum()) for doc_id, _ in hits], abs=1e-4)
