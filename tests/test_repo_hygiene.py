"""The repository holds no absolute path of any machine, says nothing about how it was developed,
and the suite reads nothing outside it."""

import re
import subprocess
from pathlib import Path

from conftest import ROOT

# An absolute path into a home, temporary or work folder; URLs ("host.org/home/...") do not match.
ABSOLUTE = re.compile(r"(?<![\w.~/-])/(?:work|tmp|home|root|Users)(?:/|\b)")
CHECKED = ("README.md", "docs", "bench", "src", "recipes", "scripts", ".ci")
# Words about the development process: our issue numbers, sessions, agents and helpers, who ran what,
# a machine shared with other jobs, hardware or time that was not there. Identifiers (pytest's
# scope="session", start_new_session, InferenceSession, sessionStorage) and other projects' public
# issues ("next-plaid #172") do not match.
PROCESS = re.compile("|".join([
    r"\bissues?[- ]#?\d+",                                          # issue 9, issues 10-13, issue-13
    r"\bthe issue\b",                                               # the goal
    r"\((?:issue )?#\d+\)|\b(?:see|fixes|closes|resolves) #\d+",     # (#13), see #13
    r"(?<![\w\"'.])sessions?(?![\w\"'(.])(?!\s*=)",                # this session
    r"(?<!user[- ])\bagents?'?(?![\w-])",                           # other agents' jobs
    r"\bhelpers?\b",                                                # no helper
    r"\bshared (?:by|with) (?:about |up to |~)?(?:\d+|other|several|many)\b",
    r"\bshared (?:\d-core )?machine\b|\bmachine (?:is|was) shared\b",
    r"\bother (?:jobs|people|agents)\b",
    r"\b(?:was|were) not (?:available|lent|timed|run)\b|\bnot available (?:at the time|to this)\b",
    r"\blent\b|\bnot timed\b|\bthis task\b",
    r"\b(?:this|last|next|previous) round\b",
]), re.IGNORECASE)
PROCESS_CHECKED = (*CHECKED, "tests")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".html", ".js", ".css", ".txt", ".cfg", ""}


def repository_files(folders: tuple[str, ...] = CHECKED) -> list[Path]:
    """Tracked and new (not ignored) files under ``folders``: build outputs and bench/_work stay out."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *folders],
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


PROCESS_TALK = [
    "the GPU checks of issue 2 and 4 were not run", "Goals of issue 5", "issues 10-13", "the issue-13 set",
    "the issue's BM25 0.352", "fixed in (#13)", "see #13", "During this session the cores", "Session of 2026-12-02",
    "shared with up to six other agents", "other agents' jobs", "(no helper)", "a helper ran it",
    "The 2 cores are shared with other agents", "2 CPU cores shared by about 6 agents",
    "a machine shared with other jobs", "on the shared 2-core machine", "No GPU was lent to this task",
    "it was not available at the time", "the full recipe was not timed", "Not run this round",
]
LEGITIMATE = [
    '@pytest.fixture(scope="session")', "start_new_session=True", "onnxruntime.InferenceSession(path)",
    'sessionStorage.getItem("maxsim-key")', "session = onnxruntime.InferenceSession(path)", "session.run(None, feeds)",
    "the summary table is shared with ``maxsim add``",
    "bounded size (``maxsim.search.limits``, shared with the service)", "next-plaid #172 and fast-plaid #47",
    'best passage: #3, characters 10-20', "truncated to the task's length", "the User-Agent header",
    "documents that were not indexed", "best of 3 rounds", "GPU encoding throughput is not measured here",
]


def test_process_pattern_catches_process_talk_and_spares_product_words():
    assert [text for text in PROCESS_TALK if not PROCESS.search(text)] == []
    assert [text for text in LEGITIMATE if PROCESS.search(text)] == []


def test_nothing_talks_about_how_the_project_was_developed():
    files = [p for p in repository_files(PROCESS_CHECKED) if p.name != "test_repo_hygiene.py"]
    assert any(p.name == "RESULTS.md" for p in files) and any(p.parent.name == "tests" for p in files)
    assert offending_lines(files, PROCESS) == []


def test_the_suite_reads_nothing_outside_the_repository():
    tests = sorted((ROOT / "tests").glob("*.py"))
    outside = re.compile(r"\.\./shared|MAXSIM_SHARED|ROOT\.parent|parents\[2\]")
    assert [line for line in offending_lines(tests, outside) if "test_repo_hygiene.py" not in line] == []
    assert (ROOT / "tests" / "fixtures" / "models" / "texts.py").is_file()
