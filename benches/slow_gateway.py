#!/usr/bin/env python3
"""A slow HTTP CONNECT gateway for scripts/bench.sh: holds every CONNECT for --delay seconds
before it answers, then tunnels to 127.0.0.1 at the port the CONNECT line names, whatever host it
names (no lookup, no other address). A client whose event loop blocks inside connect() reaches it
one CONNECT at a time; one whose connects return at once has them all held together.

For every CONNECT it appends to --held one line: how many CONNECTs it holds at that moment, this
one included, so that the most held at once during a run is the largest number appended during
it. Python 3 standard library only (after scripts/integration/slow_gateway.py)."""

import argparse
import socket
import threading
import time

lock = threading.Lock()
held = 0


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
    global held
    with client:
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(4096)
            if not data:
                return
            head += data
        port = int(head.split(b" ")[1].rsplit(b":", 1)[1])
        with lock:
            held += 1
            with open(args.held, "a") as out:
                out.write(f"{held}\n")
        time.sleep(args.delay)
        with lock:
            held -= 1
        try:
            upstream = socket.create_connection(("127.0.0.1", port))
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            t = threading.Thread(target=pipe, args=(client, upstream), daemon=True)
            t.start()
            pipe(upstream, client)
            t.join()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True, help="listens on 127.0.0.1:PORT")
    parser.add_argument("--delay", type=float, default=0.6)
    parser.add_argument("--held", required=True)
    args = parser.parse_args()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(256)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, args), daemon=True).start()


if __name__ == "__main__":
    main()
