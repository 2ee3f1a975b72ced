"""The command line on bad input and damaged folders: one ``error: …`` line naming the file or
item, the documented exit status (docs/cli.md), never a traceback."""

import json
import sqlite3
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from corruption import without_checksums
from maxsim.cli import app
from test_server import TINY, build_index


@pytest.fixture()
def folder(tiny_model, tmp_path):
    return build_index(tmp_path / "index", tiny_model, n=3)


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_empty_api_key_is_refused_before_serving(folder):
    for key in ("", "  "):
        result = run("serve", folder, "--api-key", key, "--port", "1")
        assert result.exit_code == 2 and "API key is empty" in one_error_line(result)


def test_missing_folder_and_store(folder, tmp_path):
    result = run("search", tmp_path / "nowhere", "flow")
    assert result.exit_code == 3 and "nowhere" in one_error_line(result)
    (folder / "state.sqlite3").unlink()
    result = run("search", folder, "flow")
    assert result.exit_code == 5 and "state.sqlite3" in one_error_line(result)
    assert not (folder / "state.sqlite3").exists()  # never silently recreated


def test_truncated_store_is_named(folder):
    store = folder / "state.sqlite3"
    for suffix in ("-wal", "-shm"):
        (folder / f"state.sqlite3{suffix}").unlink(missing_ok=True)
    store.write_bytes(store.read_bytes()[:1000])
    result = run("search", folder, "flow")
    assert result.exit_code == 5 and "state.sqlite3" in one_error_line(result)


def test_truncated_vectors_are_named_by_search_and_serve(folder):
    damaged = [p for p in (folder / "index").iterdir() if p.is_file() and p.stat().st_size > 100]
    assert damaged
    for path in damaged:
        path.write_bytes(path.read_bytes()[:50])
    for command in (["search", folder, "flow"], ["serve", folder, "--port", "1"]):
        done = subprocess.run([sys.executable, "-m", "maxsim.cli", *map(str, command)], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 5, done.stderr[-2000:]
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert "Traceback" not in done.stderr and len(errors) == 1, done.stderr[-2000:]
        assert str(folder / "index") in errors[0] and errors[0] == done.stderr.splitlines()[-1]


def test_search_json_prints_surrogates(folder):
    without_checksums(folder / "state.sqlite3")  # as an older maxsim could have stored it (checksums come later)
    with sqlite3.connect(folder / "state.sqlite3") as db:
        db.execute("UPDATE documents SET metadata = ?", (json.dumps({"note": "\ud800 x"}),))
    assert run("search", folder, "flow", "--k", "2").exit_code == 0  # the table
    result = run("search", folder, "flow", "--json")
    assert result.exit_code == 0 and "\\ud800" in result.output, result.output
    hits = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert hits and all(hit["metadata"] == {"note": "\ud800 x"} for hit in hits)


def test_non_utf8_input_names_the_file(tmp_path):
    bad = tmp_path / "docs.jsonl"
    bad.write_bytes(b'{"id": "a", "text": "fine"}\n{"id": "b", "text": "caf\xe9"}\n')
    result = run("index", bad, "--output", tmp_path / "out", "--model", TINY)
    if result.exit_code == 0:  # read with a detected encoding: both documents are there
        assert "café" in run("search", tmp_path / "out", "cafe", "--json").output
    else:
        assert result.exit_code == 2 and "docs.jsonl" in one_error_line(result), result.output


def test_unexpected_errors_are_one_line(folder, monkeypatch):
    from maxsim.search import Retriever

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Retriever, "open", broken)
    result = run("search", folder, "flow")
    assert result.exit_code == 1 and "unexpected RuntimeError: boom" in one_error_line(result)


def test_the_documented_exit_statuses_are_the_error_classes():
    """docs/cli.md's table is the one generated from maxsim.errors; errors.py's own table agrees."""
    from conftest import ROOT
    from maxsim import errors
    from maxsim.cli.common import exit_status_table

    assert exit_status_table() in (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = {row.split("|")[1].strip(" `"): row for row in errors.__doc__.splitlines() if row.startswith("| ``")}
    assert set(rows) == set(errors.__all__) - {"MaxsimError"}
    for name, row in rows.items():
        cls = getattr(errors, name)
        assert row.endswith(f"| {cls.status} | {cls.exit_code} |"), row


def test_each_command_is_registered_by_the_module_the_registry_names():
    """``maxsim CMD`` loads only CMD's module (``COMMANDS``): that map names every command's module."""
    from maxsim.cli.registry import COMMANDS

    registered = {command.name or command.callback.__name__: command.callback.__module__
                  for command in app.registered_commands}
    assert registered == {name: f"maxsim.cli.{module}" for name, module in COMMANDS.items()}


def test_the_console_script_exits_with_the_status_after_the_exit_handlers(tmp_path):
    """``maxsim.cli.main`` (the quick exit of ``search``): atexit handlers run, output is flushed, the
    status is the command's; ``maxsim search`` loads the search command alone."""
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('handler ran', sorted(m for m in sys.modules"
              " if m.startswith('maxsim.cli.') and m.count('.') == 2)))\n"
              "sys.argv = ['maxsim', *sys.argv[1:]]\n"
              "from maxsim.cli import main\n"
              "main()\n")

    def console(*args):
        return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True)

    helped, failed, listed = console("search", "--help"), console("search", tmp_path / "nowhere", "q"), console()
    assert helped.returncode == 0 and "Usage" in helped.stdout and "handler ran" in helped.stdout
    assert "maxsim.cli.train" not in helped.stdout and "maxsim.cli.search" in helped.stdout
    assert failed.returncode == 3 and "nowhere" in failed.stderr and "handler ran" in failed.stdout
    assert "Traceback" not in failed.stderr
    assert listed.returncode == 2 and all(name in listed.stdout for name in ("search", "train", "serve", "mcp"))


def test_a_reader_that_stops_reading_ends_the_command_quietly(folder):
    """``maxsim list DIR | head -1``: the status a shell gives a writer whose pipe closed, no message."""
    process = subprocess.Popen([sys.executable, "-m", "maxsim.cli", "list", str(folder)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first line
    assert process.wait(timeout=120) == 141 and process.stderr.read() == b""
