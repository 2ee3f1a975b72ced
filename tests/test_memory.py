"""Memory a served index holds: mapped pages given back, and scans that meet few matrix shapes."""

import threading

import numpy as np
import pytest
import torch

from maxsim.index import ExactIndex, exact_scan, packed
from maxsim.memory import release_file_pages, release_map


def resident_kib(path) -> int:
    """KiB of ``path``'s mappings resident in this process (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            inside = len(fields) == 6 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.fixture
def mapped(tmp_path):
    values = np.random.default_rng(0).standard_normal((4096, 256)).astype(np.float32)  # 4 MiB
    np.save(tmp_path / "v.npy", values)
    return values, np.load(tmp_path / "v.npy", mmap_mode="r"), (tmp_path / "v.npy").resolve()


def test_release_map_gives_pages_back_and_keeps_the_values(mapped):
    values, array, path = mapped
    assert float(np.asarray(array).sum()) == pytest.approx(float(values.sum()), rel=1e-5)  # read: resident
    assert resident_kib(path) >= 4000
    assert release_map(array) >= values.nbytes
    assert resident_kib(path) < 100
    np.testing.assert_array_equal(array, values)  # read again from the file


def test_release_file_pages_by_path(mapped):
    values, array, path = mapped
    np.asarray(array).sum()
    assert release_file_pages(path) >= values.nbytes and resident_kib(path) < 100
    np.testing.assert_array_equal(array[:10], values[:10])


def test_release_map_leaves_anything_but_a_read_only_map_alone(tmp_path):
    anonymous = np.ones(1 << 20, dtype=np.float32)
    assert release_map(anonymous) == 0 and anonymous.sum() == 1 << 20  # not zeroed
    writable = np.lib.format.open_memmap(tmp_path / "w.npy", mode="w+", dtype=np.float32, shape=(1024,))
    writable[:] = 2
    assert release_map(writable) == 0 and writable.sum() == 2048


def test_window_ranges_cover_every_document_once_within_the_rows():
    doclens = np.random.default_rng(1).integers(1, 60, 500)
    ranges = packed.window_ranges(doclens, 97)
    assert ranges[0][0] == 0 and ranges[-1][1] == 500
    assert all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:]))
    assert all(doclens[a:b].sum() <= 97 for a, b in ranges)
    assert packed.window_ranges(np.array([200, 5, 5]), 97) == [(0, 1), (1, 3)]  # a longer document alone


def test_padded_shapes_are_few_and_bounded():
    assert packed.padded_queries(torch.ones(17, 4)).shape == (32, 4)
    assert [packed.padded_queries(torch.ones(n, 4)).shape[0] for n in (1, 32, 33, 500)] == [16, 32, 48, 512]
    assert torch.count_nonzero(packed.padded_queries(torch.ones(33, 4))[33:]) == 0
    for n in range(1, 5000):
        assert n <= packed.padded_rows(n) <= max(n + packed.ROW_STEP - 1, n * 17 // 16)


def test_a_scan_over_every_batch_size_meets_few_matrix_shapes(tmp_path, monkeypatch):
    """oneDNN keeps a compiled kernel per (rows, columns) it multiplies (~0.65 MB each, never freed):
    query batches of 1..64 over a collection must reuse a few shapes, not one per block and batch
    (before: one per block length and batch size, hundreds, and ~300 MB of a served index's memory)."""
    rng = np.random.default_rng(2)
    docs = [rng.standard_normal((int(rng.integers(5, 60)), 32)).astype(np.float32) for _ in range(1500)]
    index = ExactIndex.create(tmp_path / "ix", 32)
    index.add([str(i) for i in range(len(docs))], docs)
    shapes, scan = set(), packed.maxsim_scan

    def counted(q, widths, block, lengths, scales=None):
        shapes.add((block.shape[0], q.shape[0]))
        return scan(q, widths, block, lengths, scales)

    monkeypatch.setattr(exact_scan, "maxsim_scan", counted)
    queries = [rng.standard_normal((int(rng.integers(8, 33)), 32)).astype(np.float32) for _ in range(64)]
    for n in range(1, 65):
        index.search(queries[:n], k=10)
    columns = {c for _, c in shapes}
    assert len(columns) <= 48 and len(shapes) <= 2 * len(columns)  # one block size per column count (+ the tail)


def test_a_private_writable_map_is_released_only_while_unwritten(tmp_path):
    """torch maps safetensors weights private and writable: clean pages can go back to the file, but a
    written page exists only in memory, so such a map is left alone."""
    values = np.arange(1 << 20, dtype=np.float32).reshape(1024, 1024)
    np.save(tmp_path / "c.npy", values)
    path = (tmp_path / "c.npy").resolve()
    array = np.load(path, mmap_mode="c")  # MAP_PRIVATE, writable
    np.asarray(array).sum()
    assert release_file_pages(path) >= values.nbytes and resident_kib(path) < 100
    array[0, 0] = 123.0
    np.asarray(array).sum()
    assert release_file_pages(path) == 0
    assert array[0, 0] == 123.0 and resident_kib(path) >= 4000


def test_maxsim_packed_in_bounded_blocks_equals_maxsim(monkeypatch):
    """Re-scores convert BLOCK_ROWS vectors at a time into a scratch buffer: the scores are those of
    maxsim.scoring.maxsim over whole documents, and the buffer stays at the block's size."""
    from maxsim.scoring import maxsim

    monkeypatch.setattr(packed, "BLOCK_ROWS", 50)
    monkeypatch.setattr(packed, "_BUFFERS", threading.local())  # this thread's buffers, anew
    rng = np.random.default_rng(3)
    docs = [rng.standard_normal((int(n), 16)).astype(np.float16) for n in rng.integers(0, 40, 60)]
    queries = [rng.standard_normal((n, 16)).astype(np.float32) for n in (5, 9)]
    got = packed.maxsim_packed(queries, np.concatenate(docs), np.array([len(d) for d in docs]))
    want = maxsim(queries, [d.astype(np.float32) for d in docs])
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)
    assert 0 < getattr(packed._BUFFERS, f"packed_{torch.float32}").numel() <= 50 * 16
