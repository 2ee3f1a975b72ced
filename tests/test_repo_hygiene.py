"""The repository holds no absolute path of any machine, and the suite reads nothing outside it."""

import re
import subprocess
from pathlib import Path

from conftest import ROOT

# An absolute path into a home, temporary or work folder; URLs ("host.org/home/...") do not match.
ABSOLUTE = re.compile(r"(?<![\w.~/-])/(?:work|tmp|home|root|Users)(?:/|\b)")
CHECKED = ("README.md", "docs", "bench", "src", "recipes", "scripts", ".ci")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".html", ".js", ".css", ".txt", ".cfg", ""}


def repository_files() -> list[Path]:
    """Tracked and new (not ignored) files: build outputs and bench/_work stay out."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *CHECKED],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def offending_lines(files: list[Path], pattern: re.Pattern) -> list[str]:
    found = []
    for path in files:
        if path.suffix not in TEXT_SUFFIXES:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    return found


def test_pattern_catches_machine_paths_and_spares_urls():
    assert ABSOLUTE.search("load_beir_folder('/work/shared/data/cranfield')")
    assert ABSOLUTE.search("output_dir=/tmp/out") and ABSOLUTE.search("cd /home/me") and ABSOLUTE.search("/root")
    assert not ABSOLUTE.search("https://example.org/home/page and ../shared/data and $TMPDIR/x and ~/work")


def test_no_absolute_paths_in_docs_bench_src():
    files = repository_files()
    assert any(p.name == "README.md" for p in files) and any(p.suffix == ".py" for p in files)
    assert offending_lines(files, ABSOLUTE) == []


def test_the_suite_reads_nothing_outside_the_repository():
    tests = sorted((ROOT / "tests").glob("*.py"))
    outside = re.compile(r"\.\./shared|MAXSIM_SHARED|ROOT\.parent|parents\[2\]")
    assert [line for line in offending_lines(tests, outside) if "test_repo_hygiene.py" not in line] == []
    assert (ROOT / "tests" / "fixtures" / "models" / "texts.py").is_file()
