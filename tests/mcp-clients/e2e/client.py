#!/usr/bin/env python3
"""A real MCP client for tests/wrap.rs: reads one server entry of an `mcpServers` file (as Claude
Desktop, Cursor or Claude Code would), starts it with the MCP Python SDK's stdio client (the
SDK's default environment plus the entry's `env`, as clients do), initializes a session, calls
one tool and prints the outcome as one JSON object: {"server", "is_error", "text"}.

    client.py FILE SERVER TOOL ARGUMENTS_JSON
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters, stdio_client


async def call(path, name, tool, arguments):
    with open(path) as f:
        entry = json.load(f)["mcpServers"][name]
    params = StdioServerParameters(
        command=entry["command"], args=entry.get("args", []), env=entry.get("env")
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            result = await session.call_tool(tool, arguments)
            text = "\n".join(getattr(block, "text", repr(block)) for block in result.content)
            return {
                "server": init.server_info.name,
                "is_error": bool(result.is_error),
                "text": text,
            }


def main():
    path, name, tool, arguments = sys.argv[1:5]
    outcome = asyncio.run(asyncio.wait_for(call(path, name, tool, json.loads(arguments)), 60))
    print(json.dumps(outcome))


main()
