#!/usr/bin/env python3
"""A slow HTTP CONNECT gateway for scripts/integration-test.sh: holds every CONNECT for --delay
seconds before it answers, so that a client whose event loop is blocked inside connect() shows:
its connects reach the gateway one at a time.

Whatever host a CONNECT names, the tunnel goes to --origin (the test's origin); a host whose
first label starts with "refused" gets "403 Forbidden" after the delay instead. The most
CONNECTs held at once, per client (the host name's first label up to its first "-"), are
written to --peaks as JSON after every change. Python 3 standard library only."""

import argparse
import json
import socket
import threading
import time

lock = threading.Lock()
held = {}
peaks = {}


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(client, args):
    head = b""
    while b"\r\n\r\n" not in head:
        data = client.recv(4096)
        if not data:
            client.close()
            return
        head += data
    target = head.split(b" ")[1].decode()
    host = target.rsplit(":", 1)[0]
    tag = host.split(".")[0].split("-")[0]
    with lock:
        held[tag] = held.get(tag, 0) + 1
        if held[tag] > peaks.get(tag, 0):
            peaks[tag] = held[tag]
            with open(args.peaks, "w") as out:
                json.dump(peaks, out)
    time.sleep(args.delay)
    with lock:
        held[tag] -= 1
    if host.startswith("refused"):
        client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        client.close()
        return
    address, port = args.origin.rsplit(":", 1)
    upstream = socket.create_connection((address, int(target.rsplit(":", 1)[1] or port)))
    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    pipe(upstream, client)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--origin", required=True, help="ADDRESS:PORT every tunnel goes to (the port of the CONNECT line wins)")
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--peaks", required=True)
    args = parser.parse_args()
    address, port = args.listen.rsplit(":", 1)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, int(port)))
    listener.listen(256)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, args), daemon=True).start()


if __name__ == "__main__":
    main()
