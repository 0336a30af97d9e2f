#!/usr/bin/env python3
"""A minimal MCP server over stdio for tests/wrap.rs: newline-delimited JSON-RPC on stdin and
stdout, one tool, `fetch`, which GETs its `url` argument with urllib and returns the body. No SDK:
the client is the real one, the server only has to answer it. Logs go to stderr only."""

import json
import sys
import urllib.request

TOOL = {
    "name": "fetch",
    "description": "GET a URL and return the body",
    "inputSchema": {
        "type": "object",
        "properties": {"url": {"type": "string"}},
        "required": ["url"],
    },
}


def answer(request):
    method = request.get("method")
    params = request.get("params") or {}
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "wrap-test-fetch", "version": "1.0"},
        }
    if method == "tools/list":
        return {"tools": [TOOL]}
    if method == "tools/call":
        url = params["arguments"]["url"]
        try:
            body = urllib.request.urlopen(url, timeout=20).read().decode()
        except Exception as e:  # reported to the client as a tool error
            return {"content": [{"type": "text", "text": f"{type(e).__name__}: {e}"}], "isError": True}
        return {"content": [{"type": "text", "text": body}], "isError": False}
    if method == "ping":
        return {}
    return None


for line in sys.stdin:
    request = json.loads(line)
    if "id" not in request:
        continue  # a notification (notifications/initialized...)
    result = answer(request)
    if result is None:
        reply = {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": "method not found"}}
    else:
        reply = {"jsonrpc": "2.0", "id": request["id"], "result": result}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
    print("served", request.get("method"), file=sys.stderr)
