#!/usr/bin/env python3
"""The local origin for scripts/integration-test.sh: stands in for example.org, api.github.com
and api.search.brave.com.

Listens on one loopback address, HTTPS on --https-port (a certificate from the test's own CA,
one for all the names) and plain HTTP on --http-port. The gateways under test resolve the
public names to this address; nothing here ever connects anywhere.

Answers like the real services, for the calls the test makes:
  example.org, *.example.org   /robots.txt allows everything; any other path: a small HTML page
                               whose text names the host, path and scheme it was asked for
  api.github.com               GET /search/repositories: a search result in GitHub's shape
  api.search.brave.com         GET /res/v1/web/search: a web result in Brave's shape (401
                               without an X-Subscription-Token header)
Every request is appended to --log as one JSON line (scheme, SNI, Host, method, path, headers),
so the test can tell what reached the origin and how. Python 3 standard library only.
"""

import argparse
import http.server
import json
import os
import socketserver
import ssl
import sys
import threading
from urllib.parse import parse_qs, urlsplit

log_lock = threading.Lock()


def github_search(query):
    owner = {
        "login": "mcp-redirect-fixture",
        "id": 4242,
        "node_id": "MDQ6VXNlcjQyNDI=",
        "avatar_url": "https://avatars.githubusercontent.com/u/4242",
        "url": "https://api.github.com/users/mcp-redirect-fixture",
        "html_url": "https://github.com/mcp-redirect-fixture",
        "type": "User",
    }
    repo = {
        "id": 424242,
        "node_id": "R_kgDOFixture",
        "name": "origin-says-hello",
        "full_name": "mcp-redirect-fixture/origin-says-hello",
        "private": False,
        "owner": owner,
        "html_url": "https://github.com/mcp-redirect-fixture/origin-says-hello",
        "description": f"served by the local origin for the query {query!r}",
        "fork": False,
        "url": "https://api.github.com/repos/mcp-redirect-fixture/origin-says-hello",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-02T00:00:00Z",
        "pushed_at": "2026-01-03T00:00:00Z",
        "git_url": "git://github.com/mcp-redirect-fixture/origin-says-hello.git",
        "ssh_url": "git@github.com:mcp-redirect-fixture/origin-says-hello.git",
        "clone_url": "https://github.com/mcp-redirect-fixture/origin-says-hello.git",
        "default_branch": "main",
    }
    return {"total_count": 1, "incomplete_results": False, "items": [repo]}


def brave_search(query):
    return {
        "type": "search",
        "query": {"original": query},
        "web": {
            "type": "search",
            "results": [
                {
                    "title": "Local origin result",
                    "description": f"served by the local origin for the query {query!r}",
                    "url": "https://example.org/brave-result",
                }
            ],
        },
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "integration-origin/1"

    def do_GET(self):
        self.answer()

    def do_HEAD(self):
        self.answer(head=True)

    def answer(self, head=False):
        host = (self.headers.get("Host") or "").lower()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        self.record(scheme, host)

        status, content_type, body = 200, "text/html; charset=utf-8", None
        if name == "api.github.com" and url.path == "/search/repositories":
            content_type = "application/json; charset=utf-8"
            body = json.dumps(github_search(query.get("q", [""])[0]))
        elif name == "api.search.brave.com" and url.path == "/res/v1/web/search":
            content_type = "application/json"
            if not self.headers.get("X-Subscription-Token"):
                status, body = 401, json.dumps({"error": "missing X-Subscription-Token"})
            else:
                body = json.dumps(brave_search(query.get("q", [""])[0]))
        elif url.path == "/robots.txt":
            content_type, body = "text/plain; charset=utf-8", "User-agent: *\nAllow: /\n"
        elif name == "example.org" or name.endswith(".example.org"):
            body = (
                "<!doctype html><html><head><title>Example Domain</title></head><body>"
                "<h1>Example Domain</h1>"
                f"<p>origin: served {url.path} to {name} over {scheme}</p>"
                "</body></html>\n"
            )
        else:
            status, content_type = 404, "text/plain; charset=utf-8"
            body = f"origin: nothing for {name}{url.path}\n"

        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def record(self, scheme, host):
        entry = {
            "scheme": scheme,
            "sni": getattr(self.connection, "sni", None),
            "host": host,
            "method": self.command,
            "path": self.path,
            "client": f"{self.client_address[0]}:{self.client_address[1]}",
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        with log_lock:
            with open(self.server.log_path, "a") as f:
                f.write(line)

    def log_message(self, format, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, log_path, tls=None):
        super().__init__(address, Handler)
        self.log_path = log_path
        self.tls = tls

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, on the request's own thread: a client that stalls in
        # its handshake holds up nobody else.
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                sys.stderr.write(f"origin: TLS handshake from {client_address[0]} failed: {e}\n")
                return
        super().finish_request(request, client_address)


def remember_sni(sock, server_name, _context):
    sock.sni = server_name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--https-port", type=int, default=443)
    parser.add_argument("--http-port", type=int, default=80)
    parser.add_argument("--cert", required=True, help="PEM certificate chain")
    parser.add_argument("--key", required=True, help="PEM private key")
    parser.add_argument("--log", required=True, help="JSON-lines request log (appended to)")
    parser.add_argument("--ready-file", help="created once both ports listen")
    args = parser.parse_args()

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)
    tls.sni_callback = remember_sni
    servers = [
        Server((args.address, args.https_port), args.log, tls),
        Server((args.address, args.http_port), args.log),
    ]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stderr.write(
        f"origin: listening on {args.address}:{args.https_port} (https) "
        f"and {args.address}:{args.http_port} (http)\n"
    )
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
