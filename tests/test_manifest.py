"""The manifest's output hashes: right after every finish, without reading unchanged files again."""

from __future__ import annotations

import hashlib
import os

import pipelines.manifest as manifest_module
from pipelines.manifest import Manifest


def test_outputs_are_hashed_again_only_when_they_change(tmp_path, monkeypatch):
    reads = []
    real = manifest_module.file_sha256
    monkeypatch.setattr(manifest_module, "file_sha256", lambda path: reads.append(path.name) or real(path))
    (tmp_path / "candidates.csv").write_bytes(b"uscc,tier\nA,1\n")
    (tmp_path / "allocation.csv").write_bytes(b"uscc,amount\nA,10\n")
    m = Manifest({})
    m.finish(tmp_path, {})
    assert sorted(reads) == ["allocation.csv", "candidates.csv"]

    reads.clear()
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7 new")   # the PDF, after the first finish
    stat = (tmp_path / "allocation.csv").stat()
    (tmp_path / "allocation.csv").write_bytes(b"uscc,amount\nB,20\n")   # same size, new content
    os.utime(tmp_path / "allocation.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    m.finish(tmp_path, {})
    assert sorted(reads) == ["allocation.csv", "report.pdf"]
    for name in ("candidates.csv", "allocation.csv", "report.pdf"):
        assert m.data["outputs"][name] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
