"""A DNS server that answers nothing: the benchmark's proof that no name reached DNS.

`scripts/bench.sh` runs every client in a mount namespace whose /etc/resolv.conf names only
127.0.0.1, and starts this there on port 53 (UDP and TCP). Every query that arrives is counted
(one line per query in COUNT_FILE: transport and name) and answered REFUSED at once, so a
leaking client fails fast instead of waiting for a timeout. The benchmark reports the count,
which must be 0.

    python3 benches/dns_sentinel.py COUNT_FILE
"""

import socket
import sys
import threading


def question_name(packet: bytes) -> str:
    """The first question's name, for the record (best effort)."""
    labels, pos = [], 12
    while pos < len(packet) and packet[pos] != 0 and len(labels) < 64:
        length = packet[pos]
        labels.append(packet[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    return ".".join(labels) or "?"


def refused(query: bytes) -> bytes:
    """The same header with QR set and RCODE 5 (REFUSED), the question echoed back."""
    if len(query) < 12:
        return b""
    flags = bytes([query[2] | 0x80, (query[3] & 0xF0) | 5])
    return query[:2] + flags + query[4:]


def main() -> None:
    record = open(sys.argv[1], "a", buffering=1)
    lock = threading.Lock()

    def note(transport: str, packet: bytes) -> None:
        with lock:
            record.write(f"{transport} {question_name(packet)}\n")

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 53))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 53))
    tcp.listen(16)

    def serve_tcp() -> None:
        while True:
            conn, _ = tcp.accept()
            with conn:
                conn.settimeout(1)
                try:
                    head = conn.recv(2)
                    query = conn.recv(int.from_bytes(head, "big")) if len(head) == 2 else b""
                except OSError:
                    continue
                note("tcp", query)
                answer = refused(query)
                if answer:
                    conn.sendall(len(answer).to_bytes(2, "big") + answer)

    threading.Thread(target=serve_tcp, daemon=True).start()
    print("ready", flush=True)
    while True:
        query, peer = udp.recvfrom(4096)
        note("udp", query)
        answer = refused(query)
        if answer:
            udp.sendto(answer, peer)


if __name__ == "__main__":
    main()
