"""An MCP server over a collection (``maxsim.mcp.server``, ``maxsim mcp INDEX``; docs/mcp.md): the
tools an assistant calls to search it."""
