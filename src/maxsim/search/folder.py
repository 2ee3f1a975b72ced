"""The retriever folder on disk: its manifest (settings written once by create) and its layout.

Layout::

    retriever.json     format, version, model, dim, modality ("text" or "image": what its documents
                       are, decided by the model), kind (of index) and its parameters, hybrid,
                       passages, pool factor
    state.sqlite3      the one owner of ids and versions (``maxsim.search.store``)
    index/             the index's immutable segment files (it commits through the store)
    bm25/<name>/       one BM25 copy per recent version, when hybrid
    pages/             a folder of pages: the page images (``maxsim.search.pages``)
    model/             a copy of the model, only when it was given without a name
    LOCK               the folder's writer lock (flock; holds the writer's pid)
"""

from __future__ import annotations

from pathlib import Path

from maxsim.errors import AlreadyExistsError, InvalidInputError
from maxsim.index.storage import FileWriter, read_manifest
from maxsim.search.integrity import seal, unseal

MANIFEST = "retriever.json"
FORMAT = "maxsim-retriever"
FORMAT_VERSION = 3  # 3: modality, and folders of pages; version 2 folders are text folders
OLDEST_VERSION = 2
SAVED_MODEL = "model"
REBUILD = "rebuild the folder with `maxsim index`"


def read_settings(folder: Path) -> dict:
    """The manifest of the retriever ``folder`` (errors name the file and the fix). Manifests written
    before the index kind was called ``kind`` name it ``index``; before ``modality``, folders held texts."""
    manifest = unseal(read_manifest(folder / MANIFEST, FORMAT, FORMAT_VERSION, "retriever folder",
                                    "open a sharded collection with maxsim.open; if a create was interrupted, "
                                    f"delete the folder and create it again; else {REBUILD}"),
                      folder / MANIFEST, f"restore it from a backup or {REBUILD}")
    if manifest["format_version"] < OLDEST_VERSION:
        raise InvalidInputError(f"{folder / MANIFEST}: format version {manifest['format_version']}; this maxsim "
                                f"reads versions {OLDEST_VERSION} to {FORMAT_VERSION}: {REBUILD}.")
    if "kind" not in manifest:
        manifest["kind"] = manifest.pop("index")
    manifest.setdefault("modality", "text")
    return manifest


def write_settings(folder: Path, manifest: dict) -> None:
    """Write the manifest last: a folder without it is an interrupted create."""
    writer = FileWriter(folder)
    writer.json(MANIFEST, seal(manifest))
    writer.sync()


def new_folder(folder: Path) -> Path:
    """``folder`` (created, or existing and empty) with its ``index/`` subfolder."""
    if folder.exists() and any(folder.iterdir()):
        raise AlreadyExistsError(f"{folder} is not empty: open it with maxsim.open, or pick a new folder.")
    (folder / "index").mkdir(parents=True)
    return folder


def model_source(folder: Path, manifest: dict) -> str:
    """What ``load_model`` loads for the folder: its saved copy, else the name the manifest gives."""
    return str(folder / SAVED_MODEL) if manifest["model"] == SAVED_MODEL else manifest["model"]


def folder_bytes(folder: Path) -> int:
    """Total size in bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
