"""mitmproxy addon for scripts/integration-test.sh: the inspecting proxy's resolver and its log.

- Every upstream connection goes to the local origin (--set origin_address=ADDR), whatever the
  client asked for: mitmproxy still sends the original name as SNI and Host, so the origin
  answers as that host. This is how api.github.com "resolves" here; nothing leaves loopback.
- Every request seen in clear (after TLS interception) is appended to --set flow_log=FILE as one
  JSON line: method, URL, request headers, response status. That is the proof that a
  program's HTTPS request passed through inspection.
"""

import json
import threading

from mitmproxy import ctx

_lock = threading.Lock()


class IntegrationAddon:
    def load(self, loader):
        loader.add_option("origin_address", str, "127.0.0.1", "where every upstream connection goes")
        loader.add_option("flow_log", str, "", "JSON-lines file for the requests seen in clear")

    def server_connect(self, data):
        host, port = data.server.address
        data.server.address = (ctx.options.origin_address, port)
        ctx.log.info(f"integration: upstream {host}:{port} -> {ctx.options.origin_address}:{port}")

    def response(self, flow):
        self._write(flow, flow.response.status_code, None)

    def error(self, flow):
        self._write(flow, None, str(flow.error))

    def _write(self, flow, status, error):
        if not ctx.options.flow_log:
            return
        entry = {
            "method": flow.request.method,
            "url": flow.request.pretty_url,
            "host": flow.request.pretty_host,
            "path": flow.request.path,
            "tls": flow.client_conn.tls_established,
            "sni": flow.client_conn.sni,
            "headers": {k.lower(): v for k, v in flow.request.headers.items()},
            "status": status,
            "error": error,
        }
        with _lock:
            with open(ctx.options.flow_log, "a") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")


addons = [IntegrationAddon()]
