"""On one CUDA GPU: parity of the GPU paths, and encoding throughput (bench/RESULTS.md, "GPU").

1. Parity: the reference models of tests/fixtures/models encoded on the GPU (float32, TF32 off)
   against the libraries' own outputs (``NAME.reference.npz``); tiny random ColPali / ColQwen2 /
   ColModernVBert checkpoints (tests/page_checkpoints.py) encoded on the GPU and on the CPU.
2. Throughput with random weights of the published shapes: documents/s of the card's architecture
   (ModernBERT-base, 22 layers, + Dense 768->128, documents cut at 180 tokens, Cranfield abstracts)
   and of the default model's shape (MiniLM-L6, 384 dims), in float32 and bfloat16 autocast
   ("mixed"); pages/s of a full-depth ColPali (PaliGemma-3B: SigLIP-so400m 27 layers + Gemma-2B 18
   layers), bfloat16.

    PYTHONPATH=src python3 -P bench/gpu.py --out gpu.md       (about 5 minutes on an H200)

Every part runs on its own; a part that fails prints its error in the table and the rest go on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
FIXTURES = ROOT / "tests" / "fixtures"
REFERENCE_MODELS = ["st6-tiny-bert", "st6-tiny-modernbert", "seed-layout-tiny-modernbert", "pylate-tiny-bert",
                    "stanford-tiny-bert"]
COLPALI_FULL = {"hidden": 2048, "intermediate": 16384, "heads": 8, "kv_heads": 1, "head_dim": 256, "layers": 18,
                "vision_hidden": 1152, "vision_intermediate": 4304, "vision_heads": 16, "vision_layers": 27,
                "image_size": 448, "patch": 14, "dim": 128}


def probe_texts():
    sys.path.insert(0, str(FIXTURES / "models"))
    import texts

    return texts.QUERIES, texts.DOCUMENTS


def max_diff(a: list, b: list) -> float:
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b))


def text_parity() -> list[list[str]]:
    """Per reference model: max abs difference of GPU float32 vectors from the library's own outputs."""
    from maxsim import MultiVectorEncoder

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    queries, documents = probe_texts()
    rows = []
    for name in REFERENCE_MODELS:
        model = MultiVectorEncoder(FIXTURES / "models" / name, device="cuda", dtype="float32")
        reference = np.load(FIXTURES / "models" / f"{name}.reference.npz")
        q, d = model.encode_query(queries), model.encode_document(documents)
        diff = max(max_diff(q, [reference[f"query_{i}"] for i in range(len(q))]),
                   max_diff(d, [reference[f"document_{i}"] for i in range(len(d))]))
        auto = MultiVectorEncoder(FIXTURES / "models" / name, device="cuda").precision
        rows.append([f"{name} on cuda, float32", f"{diff:.2e}", f'dtype="auto" resolves to {auto}'])
    return rows


def page_parity(work: Path) -> list[list[str]]:
    """Per page family: max abs difference of GPU float32 page and query vectors from the CPU's."""
    from PIL import Image

    from maxsim.models.pages import PageEncoder
    from page_checkpoints import FAMILIES, build

    rng = np.random.default_rng(0)
    pages = [Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)) for _ in range(4)]
    rows = []
    for family in FAMILIES:
        try:
            folder = build(family, work / family)
            cpu, gpu = (PageEncoder(folder, device=device, dtype="float32") for device in ("cpu", "cuda"))
            diff = max(max_diff(cpu.encode_document(pages), gpu.encode_document(pages)),
                       max_diff(cpu.encode_query(["a chart of sales"]), gpu.encode_query(["a chart of sales"])))
            rows.append([f"{family} (tiny) pages on cuda vs cpu, float32", f"{diff:.2e}", ""])
        except Exception as error:  # a family this transformers version lacks
            rows.append([f"{family} (tiny) pages on cuda vs cpu", "not run", f"{type(error).__name__}: {error}"])
    return rows


def card_backbone(folder: Path, hidden: int, layers: int, heads: int, intermediate: int, kind: str) -> Path:
    """A random backbone of the given shape with the tiny fixtures' WordPiece tokenizer (30,522 words)."""
    from transformers import BertConfig, BertModel, ModernBertConfig, ModernBertModel

    source = FIXTURES / "models" / "st6-tiny-modernbert"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, folder / name)
    if kind == "modernbert":
        config = ModernBertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=intermediate, pad_token_id=0,
                                  cls_token_id=101, sep_token_id=102, bos_token_id=101, eos_token_id=102)
        model = ModernBertModel(config)
    else:
        model = BertModel(BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=heads, intermediate_size=intermediate))
    model.save_pretrained(str(folder))
    return folder


def documents_per_second(model, texts: list[str], batch_size: int, repeats: int = 3) -> float:
    model.encode_document(texts[:batch_size], batch_size=batch_size)  # warm-up (kernels, allocator)
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.encode_document(texts, batch_size=batch_size)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def text_throughput(work: Path, n_docs: int) -> list[list[str]]:
    from maxsim.training.recipe import build_model

    corpus = [json.loads(line) for line in (FIXTURES / "data" / "cranfield" / "corpus.jsonl").open()]
    texts = [f"{d['title']} {d['text']}" for d in corpus] * (n_docs // len(corpus) + 1)
    texts = texts[:n_docs]
    shapes = {"card (ModernBERT-base 22 layers + Dense 128)": (768, 22, 12, 1152, "modernbert", 128),
              "default's shape (MiniLM-L6, 384)": (384, 6, 12, 1536, "bert", None)}
    rows = []
    for label, (hidden, layers, heads, intermediate, kind, dense) in shapes.items():
        backbone = card_backbone(work / kind, hidden, layers, heads, intermediate, kind)
        spec = {"backbone": str(backbone), "document_length": 180, "skiplist": "punctuation"}
        if dense:
            spec.update(dense=dense, query_length=32, prompts={"query": "[Q] ", "document": "[D] "},
                        query_expansion={"strategy": "fixed", "length": 32, "attend": False})
        model = build_model(spec).to("cuda")
        for dtype in ("float32", "mixed"):
            model.set_dtype(dtype)
            rate = documents_per_second(model, texts, batch_size=256)
            rows.append([f"{label}, {dtype}, batch 256", f"{rate:,.0f} documents/s", f"{n_docs} Cranfield abstracts"])
    return rows


def page_throughput(work: Path, n_pages: int) -> list[list[str]]:
    from PIL import Image

    from maxsim.models.pages import PageEncoder
    from page_checkpoints import build

    torch.set_default_dtype(torch.bfloat16)  # 2.9B random weights: built and saved in bfloat16
    try:
        folder = build("colpali", work / "colpali-full", COLPALI_FULL)
    finally:
        torch.set_default_dtype(torch.float32)
    model = PageEncoder(folder, device="cuda", dtype="bfloat16")
    rng = np.random.default_rng(0)
    pages = [Image.fromarray(rng.integers(0, 255, (1100, 850, 3), dtype=np.uint8)) for _ in range(n_pages)]
    model.encode_document(pages[:8], batch_size=8)
    torch.cuda.synchronize()
    start = time.perf_counter()
    vectors = model.encode_document(pages, batch_size=32)
    torch.cuda.synchronize()
    rate = n_pages / (time.perf_counter() - start)
    return [["ColPali full depth (PaliGemma-3B shape), bfloat16, batch 32", f"{rate:,.1f} pages/s",
             f"{len(vectors[0])} vectors per page, 448 px"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=16384, help="documents per throughput run")
    parser.add_argument("--pages", type=int, default=256, help="pages per page throughput run")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="maxsim-gpu-"))
    rows = [["device", torch.cuda.get_device_name(0), f"torch {torch.__version__}"]]
    parts = [("parity", text_parity), ("pages", lambda: page_parity(work)),
             ("text throughput", lambda: text_throughput(work, args.docs)),
             ("page throughput", lambda: page_throughput(work, args.pages))]
    for name, part in parts:
        start = time.perf_counter()
        try:
            rows += part()
        except Exception as error:
            traceback.print_exc()
            rows.append([name, "failed", f"{type(error).__name__}: {error}"])
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
        table = "| what | result | note |\n|---|---|---|\n" + "\n".join("| " + " | ".join(r) + " |" for r in rows)
        print(table, flush=True)
        if args.out:
            args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
