"""``maxsim mcp``: the official MCP SDK's client against the server in a real subprocess, over stdio
(read-only: the write tools are not offered) and over streamable HTTP (``--writable``: a document
added through the tool is then found by search)."""

import os
import socket
import subprocess
import sys
import time

import anyio
import pytest

from conftest import ROOT
from test_cli_search_server import build_folder

mcp = pytest.importorskip("mcp", reason="the MCP server needs the mcp SDK: pip install maxsim[mcp]")
QUERY = "boundary layer heat transfer"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_folder(tmp_path_factory.mktemp("mcp") / "index")


def call(client, tool: str, arguments: dict):
    """The structured answer of a successful tool call."""
    async def run():
        result = await client.call_tool(tool, arguments)
        assert not result.is_error, result.content[0].text
        return result.structured_content
    return run()


def test_stdio_read_only_lists_read_tools_and_searches_with_a_filter(folder):
    params = mcp.StdioServerParameters(command=sys.executable, args=["-m", "maxsim.cli", "mcp", str(folder)],
                                       env=ENV)

    async def conversation():
        async with mcp.Client(params) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert set(tools) == {"search", "get", "list", "explain"}  # no write tools without --writable
            schema = tools["search"].input_schema
            assert schema["required"] == ["query"] and set(schema["properties"]) == {"query", "k", "filter", "hybrid"}
            assert schema["properties"]["k"]["maximum"] == 100

            hits = (await call(client, "search", {"query": QUERY, "k": 5, "filter": {"kind": "odd"}}))["result"]
            assert len(hits) == 5 and all(hit["metadata"]["kind"] == "odd" for hit in hits)
            assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)
            unfiltered = (await call(client, "search", {"query": QUERY, "k": 5}))["result"]
            assert [h["id"] for h in unfiltered] != [h["id"] for h in hits]

            whole = await call(client, "get", {"id": hits[0]["id"]})
            piece = await call(client, "get", {"id": hits[0]["id"], "start": 10, "max_chars": 50})
            assert piece["text"] == whole["text"][10:60] and (piece["end"], piece["length"]) == (60, len(whole["text"]))
            listed = (await call(client, "list", {"filter": {"n": {"$lt": 6}}, "limit": 10}))["result"]
            assert sorted(d["metadata"]["n"] for d in listed) == [0, 1, 2, 3, 4, 5]
            explained = await call(client, "explain", {"query": QUERY, "id": hits[0]["id"]})
            assert explained["score"] == pytest.approx(hits[0]["score"], rel=1e-4)
            assert "**" in explained["excerpt"] and explained["picks"]

            missing = await client.call_tool("get", {"id": "no-such-id"})
            assert missing.is_error and "'no-such-id' is not in" in missing.content[0].text
            bad = await client.call_tool("search", {"query": QUERY, "filter": {"n": {"$near": 3}}})
            assert bad.is_error and "$near" in bad.content[0].text

    anyio.run(conversation)


@pytest.fixture
def http_server(folder):
    """``maxsim mcp --writable --transport http`` on a free loopback port: its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "maxsim.cli", "mcp", str(folder), "--writable", "--transport",
                                "http", "--port", str(port)], env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while process.poll() is None and time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    if process.poll() is not None:
        pytest.fail(f"maxsim mcp did not start: {process.communicate()[0][-2000:]}")
    yield f"http://127.0.0.1:{port}/mcp"
    process.terminate()
    process.wait(timeout=60)


def test_http_writable_adds_then_finds_a_document(http_server):
    async def conversation():
        async with mcp.Client(http_server) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {"search", "get", "list", "explain", "add", "upsert", "remove"}
            text = "Zebra mussel colonies clog the cooling water intakes of the wind tunnel."
            added = await call(client, "add", {"documents": [{"id": "zebra", "text": text,
                                                               "metadata": {"kind": "new"}}]})
            assert added["result"] == ["zebra"]
            again = await client.call_tool("add", {"documents": [{"id": "zebra", "text": text}]})
            assert again.is_error and "'zebra' is already in" in again.content[0].text
            hits = (await call(client, "search", {"query": "zebra mussels clog cooling water intakes", "k": 3,
                                                  "filter": {"kind": "new"}}))["result"]
            assert [hit["id"] for hit in hits] == ["zebra"] and hits[0]["passage"]["text"] == text
            await call(client, "upsert", {"documents": [{"id": "zebra", "text": "Quagga mussels now.",
                                                         "metadata": {"kind": "new"}}]})
            assert (await call(client, "get", {"id": "zebra"}))["text"] == "Quagga mussels now."
            assert (await call(client, "remove", {"ids": ["zebra"]}))["result"] == 24

    anyio.run(conversation)
