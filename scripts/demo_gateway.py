#!/usr/bin/env python3
"""A tiny HTTP CONNECT gateway on 127.0.0.1 for scripts/demo.sh.

Every `CONNECT host:port` it is asked for is printed and tunnelled to the one local origin given
by --origin-port, whatever host or port was requested: it never connects anywhere but 127.0.0.1.
Hosts listed with --refuse get `403 Forbidden` instead, to show how a gateway's refusal reaches
the program. Python 3 standard library only.
"""

import argparse
import os
import select
import socket
import socketserver
import sys

ORIGIN_HOST = "127.0.0.1"
MAX_HEAD = 16 * 1024


def say(line):
    print(f"gateway: {line}", flush=True)


def read_head(conn):
    """Reads the request head up to the blank line; returns (head, bytes that came after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > MAX_HEAD:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def relay(client, upstream):
    """Copies bytes both ways until both sides have finished sending."""
    peer = {client: upstream, upstream: client}
    open_sides = [client, upstream]
    while open_sides:
        readable, _, _ = select.select(open_sides, [], [], 30)
        if not readable:
            return  # idle for 30 s: give up
        for sock in readable:
            data = sock.recv(65536)
            if data:
                peer[sock].sendall(data)
            else:
                open_sides.remove(sock)
                try:
                    peer[sock].shutdown(socket.SHUT_WR)
                except OSError:
                    pass


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        client = self.request
        client.settimeout(10)
        head, rest = read_head(client)
        if head is None:
            return
        lines = head.decode("latin-1").split("\r\n")
        request_line = lines[0]
        parts = request_line.split(" ")
        if len(parts) != 3 or parts[0] != "CONNECT":
            say(f"{request_line!r} -> 405 (only CONNECT is served)")
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host = parts[1].rsplit(":", 1)[0].strip("[]").lower()
        has_auth = any(l.lower().startswith("proxy-authorization:") for l in lines[1:])
        note = " (with Proxy-Authorization)" if has_auth else ""
        if host in self.server.refused:
            say(f"{request_line}{note} -> 403 Forbidden")
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        origin = (ORIGIN_HOST, self.server.origin_port)
        try:
            upstream = socket.create_connection(origin, timeout=5)
        except OSError as e:
            say(f"{request_line}{note} -> 502 ({e})")
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        say(f"{request_line}{note} -> tunnel to {origin[0]}:{origin[1]}")
        with upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            client.settimeout(None)
            upstream.settimeout(None)
            relay(client, upstream)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def write_port_file(path, port):
    """Writes the bound port atomically, so a reader never sees a half-written number."""
    partial = path + ".partial"
    with open(partial, "w") as f:
        f.write(f"{port}\n")
    os.replace(partial, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--listen", default="127.0.0.1",
                        help="address to listen on (the zero-leak test uses its own namespace's)")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--origin-port", type=int, required=True,
                        help="every tunnel goes to 127.0.0.1:ORIGIN_PORT")
    parser.add_argument("--refuse", action="append", default=[], metavar="HOST",
                        help="answer 403 for this host (repeatable)")
    args = parser.parse_args()

    server = Server((args.listen, args.port), Handler)
    server.origin_port = args.origin_port
    server.refused = {h.lower() for h in args.refuse}
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    say(f"listening on {args.listen}:{port}, tunnelling every CONNECT to "
        f"{ORIGIN_HOST}:{args.origin_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
