"""A corruption fuzzer for retriever folders: random bytes written into a random stored file of a
served folder, then the same questions asked of the serving collection and of a freshly opened one.

Each trial ends in one of:
- ``correct``: every answer equals the undamaged folder's;
- ``detected``: a read raised ``CorruptedError`` naming a file of the folder (no wrong answer);
- ``found``: an answer was wrong, but ``maxsim check`` names the damage;
- ``silent``: a wrong answer that ``maxsim check`` does not find, or an error that is not a
  ``CorruptedError`` — the outcomes that must never happen.

Files left out: ``LOCK`` (it holds the writer's pid, nothing read) and ``state.sqlite3-shm`` (SQLite's
shared-memory index of the WAL, rebuilt from the WAL, not stored data). Used by
tests/test_corruption.py and bench/corruption.py.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

from maxsim.errors import CorruptedError
from maxsim.opener import check
from maxsim.search import Retriever

EXCLUDED = ("LOCK", "state.sqlite3-shm")
LABS = ["ames", "langley", "glenn"]


def build(folder: Path, model, model_name: str, n: int = 60) -> Path:
    """A hybrid exact retriever of ``n`` short documents with metadata, written in a few commits."""
    texts = [f"Note {i} on {['wing lift', 'boundary layers', 'heat transfer'][i % 3]} in test run {i * 7}."
             for i in range(n)]
    metadata = [{"year": 2000 + i % 10, "lab": LABS[i % 3], "tags": ["a", f"t{i % 5}"]} for i in range(n)]
    with Retriever.create(folder, model, index="exact", hybrid=True, model_name=model_name) as r:
        r.add(texts[: n // 2], ids=[f"d{i}" for i in range(n // 2)], metadata=metadata[: n // 2])
        r.add(texts[n // 2:], ids=[f"d{i}" for i in range(n // 2, n)], metadata=metadata[n // 2:])
        r.upsert(["A rewritten note on shock waves."], ids=["d1"], metadata=[{"year": 1999, "lab": "ames"}])
    return folder


def without_checksums(store: Path) -> None:
    """Turn the ``state.sqlite3`` at ``store`` into one written before row checksums (its next open
    adds them)."""
    with sqlite3.connect(store) as db:
        db.execute("DROP INDEX fields_value")
        for table in ("documents", "passages", "fields"):
            db.execute(f"ALTER TABLE {table} DROP COLUMN crc")
        db.execute("ALTER TABLE commits DROP COLUMN digest")
        db.execute("ALTER TABLE commits DROP COLUMN crc")
        db.execute("CREATE INDEX fields_value ON fields (key, t, v, doc)")


def answers(collection) -> list:
    """The questions every trial asks: dense, hybrid and filtered searches, gets and a listing."""
    def hits(query, **options):
        return [(h.id, round(h.score, 4), h.text, h.metadata, h.passage) for h in
                collection.search(query, k=8, **options)[0]]

    return [hits("wing lift"), hits("heat transfer in a boundary layer", hybrid=True),
            hits("wing lift", filter={"lab": "ames"}), hits("test run", filter={"year": {"$gte": 2005}}),
            [collection.get(doc_id) for doc_id in ("d0", "d1", "d17")],
            collection.documents(filter={"tags": "t3"}, limit=100)]


def serve(base: Path, work: Path, model) -> Retriever:
    """A copy of ``base`` in ``work``, opened and written once (so its WAL holds a commit), as a
    service holds it."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)
    served = Retriever.open(work, model=model)
    served.upsert(["A served note on panel flutter."], ids=["d2"], metadata=[{"year": 2011, "lab": "glenn"}])
    return served


def damage(folder: Path, rng: random.Random) -> str:
    """Write random bytes (a few scattered, or a run of random bytes or zeros) over a random stored
    file of ``folder``, in place as a disk error would; returns what was done."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in EXCLUDED and p.stat().st_size)
    target = rng.choice(files)
    size = target.stat().st_size
    mode = rng.choice(["bytes", "run", "zeros"])
    with open(target, "r+b") as f:
        if mode == "bytes":
            for _ in range(rng.randint(1, 8)):
                f.seek(rng.randrange(size))
                f.write(bytes([rng.randrange(256)]))
        else:
            start = rng.randrange(size)
            length = min(rng.randint(1, 4096), size - start)
            f.seek(start)
            f.write(rng.randbytes(length) if mode == "run" else bytes(length))
    return f"{mode} in {target.relative_to(folder)}"


def trial(base: Path, work: Path, model, expected: list, rng: random.Random) -> tuple[str, str]:
    """One trial on a served copy of ``base`` in ``work``: (outcome, description)."""
    def fresh() -> bool:
        with Retriever.open(work, model=model) as collection:
            return answers(collection) == expected

    with serve(base, work, model) as served:
        assert answers(served) == expected  # the copy answers as the original before the damage
        what = damage(work, rng)
        results = [classified(lambda: answers(served) == expected, work), classified(fresh, work)]
    errors = [r for r in results if r.startswith("error")]
    if errors:
        return "silent", f"{what}: {errors[0]}"
    if "wrong" in results:
        findings = check(work)
        return ("found", f"{what}: {findings[0]}") if findings else ("silent", f"{what}: wrong answer, check clean")
    return ("detected" if "detected" in results else "correct"), what


def classified(asked, folder: Path) -> str:
    """"correct" / "wrong" as ``asked()`` says, "detected" for a CorruptedError naming a file of
    ``folder``, "error: …" for anything else."""
    try:
        return "correct" if asked() else "wrong"
    except CorruptedError as error:
        return "detected" if str(folder) in str(error) else f"error: unnamed {error}"
    except Exception as error:  # any other type breaks the guarantee
        return f"error: {type(error).__name__}: {error}"


def fuzz(base: Path, work: Path, model, trials: int, seed: int = 0) -> tuple[Counter, list[str]]:
    """Outcome counts of ``trials`` trials, and the descriptions of the silent ones."""
    with serve(base, work, model) as pristine:
        expected = answers(pristine)
    rng, outcomes, silent = random.Random(seed), Counter(), []
    for _ in range(trials):
        outcome, what = trial(base, work, model, expected, rng)
        outcomes[outcome] += 1
        if outcome == "silent":
            silent.append(what)
    return outcomes, silent
