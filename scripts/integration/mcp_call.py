#!/usr/bin/env python3
"""A real MCP client for scripts/integration-test.sh: the PyPI `mcp` SDK's stdio client starts a
server, initializes a session, calls one tool and prints the outcome as one JSON object:

    {"server": "mcp-fetch 2026.10.24", "is_error": false, "text": "...", "error": null}

`is_error` is the tool result's isError flag; `error` is set instead when the call itself
failed (a JSON-RPC error, a server that died, a timeout). The exit status is 0 whenever this
JSON was printed, so the caller judges the outcome.

The server is started the way MCP clients start it: `command` and `args` from the command
line, and an environment made of the SDK's short default list (HOME, PATH, ...) plus each
--env NAME=VALUE, as a server entry's "env" block would give. Nothing else of this process's
environment reaches the server. Its stderr goes to --stderr.

    mcp_call.py --tool fetch --arguments '{"url": "https://example.org/"}' \
        --env SSL_CERT_FILE=/tmp/ca.pem -- mcp-redirect run --config c.toml -- mcp-server-fetch
"""

import argparse
import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters, stdio_client


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", required=True)
    parser.add_argument("--arguments", default="{}", help="the tool's arguments, as JSON")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--stderr", help="file for the server's stderr (default: ours)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds for the whole exchange")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("the server command is missing (after --)")
    return args


def tool_text(result):
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if text is not None else repr(block))
    return "\n".join(parts)


async def call(args, errlog):
    env = dict(item.split("=", 1) for item in args.env)
    params = StdioServerParameters(command=args.command[0], args=args.command[1:], env=env)
    outcome = {"server": None, "is_error": None, "text": None, "error": None}
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            info = init.server_info
            outcome["server"] = f"{info.name} {info.version}"
            try:
                result = await session.call_tool(args.tool, json.loads(args.arguments))
            except Exception as e:  # a JSON-RPC error is an outcome to report, not a crash
                outcome["error"] = f"{type(e).__name__}: {e}"
            else:
                outcome["is_error"] = bool(result.is_error)
                outcome["text"] = tool_text(result)
    return outcome


def main():
    args = parse_args()
    errlog = open(args.stderr, "a") if args.stderr else sys.stderr
    try:
        outcome = asyncio.run(asyncio.wait_for(call(args, errlog), args.timeout))
    except Exception as e:
        outcome = {"server": None, "is_error": None, "text": None, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
