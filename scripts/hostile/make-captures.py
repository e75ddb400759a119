#!/usr/bin/env python3
"""Writes adversarial captures for connscope: classic pcap, Ethernet/IPv4/TCP frames built here.

Usage:
    make-captures.py OUTDIR                 every small capture (the ones under tests/data/hostile/)
    make-captures.py OUTDIR --flood N       only syn-flood-N.pcap with N half-open connections

Checksums are zero (connscope does not check them). Every capture is deterministic: the same
command writes the same bytes. Each capture's expected report is explained in tests/hostile.rs.

Captures (server 10.0.0.1:80 unless said otherwise):
  syn-flood-N.pcap      N SYNs, each from its own client (100.64.0.0/10 + i, a pseudo-random port)
                        with a distinct ISN; no SYN-ACK ever comes.
  seq-wrap.pcap         one keep-alive connection whose sequence numbers, both ways, wrap past 2^32
                        in the middle of the exchange; 3 requests, one of them in a segment that
                        spans the wrap; a normal close.
  bad-rst.pcap          one request/response, then 2 RSTs whose sequence numbers are out of window
                        (ignored), then a normal close.
  overlap.pcap          retransmissions that overlap with different bytes: the first copy wins.
  endless-chunked.pcap  a chunked response whose second chunk claims 2^63-1 bytes and never ends; no FIN.
  huge-header.pcap      3 MiB of request header lines without the blank line, then a valid request.
  odd-closes.pcap       data after a RST; a FIN without a handshake; duplicate SYN-ACKs with
                        different ISNs.
  evil-fragments.pcap   requests in IPv4 fragments (client 10.0.0.2:40000): one rebuilt; one whose
                        second fragment overlaps the first (teardrop: discarded), sent again with
                        a duplicated first fragment (rebuilt); one whose last fragment comes 31 s
                        after its first (expired), sent again whole; a fragment ending past 65,535
                        bytes; 5,000 first fragments from 198.18.0.1 that never complete.
"""
import os
import random
import struct
import sys

SERVER = ("10.0.0.1", 80)
T0 = 1_700_000_000.0
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10
MSS = 1448


def ip_bytes(addr):
    return bytes(int(x) for x in addr.split("."))


def frame(src, dst, flags, seq, ack, payload=b"", window=65535):
    """An Ethernet/IPv4/TCP frame (no options, checksums zero)."""
    tcp = struct.pack(">HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, window, 0, 0)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0,
                     ip_bytes(src[0]), ip_bytes(dst[0]))
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + tcp + payload


def tcp_bytes(src, dst, flags, seq, ack, payload=b"", window=65535):
    """A TCP header (no options, checksum zero) and its payload."""
    return struct.pack(">HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, window, 0, 0) + payload


def fragment(src, dst, ident, offset, more, data):
    """An Ethernet/IPv4 frame holding bytes `offset`.. of a TCP packet's payload (IP protocol 6)."""
    flags_offset = (0x2000 if more else 0) | (offset // 8)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident, flags_offset, 64, 6, 0,
                     ip_bytes(src[0]), ip_bytes(dst[0]))
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + data


class Pcap:
    """A classic little-endian microsecond pcap being written, one frame per call."""

    def __init__(self, path):
        self.out = open(path, "wb")
        self.out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.ts = T0
        self.count = 0

    def add(self, data, gap=0.0001):
        self.ts += gap
        sec = int(self.ts)
        usec = int(round((self.ts - sec) * 1e6))
        if usec == 1_000_000:
            sec, usec = sec + 1, 0
        self.out.write(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)
        self.count += 1

    def close(self):
        self.out.close()
        return self.count


class Conn:
    """One TCP connection between a client and SERVER, tracking both sides' next sequence numbers."""

    def __init__(self, pcap, client, cisn, sisn):
        self.pcap, self.client = pcap, client
        self.cnext, self.snext = cisn, sisn

    def handshake(self):
        self.pcap.add(frame(self.client, SERVER, SYN, self.cnext, 0))
        self.pcap.add(frame(SERVER, self.client, SYN | ACK, self.snext, self.cnext + 1))
        self.cnext += 1
        self.snext += 1
        self.pcap.add(frame(self.client, SERVER, ACK, self.cnext, self.snext))

    def client_sends(self, data, seg=MSS):
        for at in range(0, len(data), seg):
            piece = data[at:at + seg]
            self.pcap.add(frame(self.client, SERVER, PSH | ACK, self.cnext, self.snext, piece))
            self.cnext += len(piece)
        self.pcap.add(frame(SERVER, self.client, ACK, self.snext, self.cnext))

    def server_sends(self, data, seg=MSS):
        for at in range(0, len(data), seg):
            piece = data[at:at + seg]
            self.pcap.add(frame(SERVER, self.client, PSH | ACK, self.snext, self.cnext, piece))
            self.snext += len(piece)
        self.pcap.add(frame(self.client, SERVER, ACK, self.cnext, self.snext))

    def client_closes(self):
        """Client FIN, server FIN, client's last ACK: client TIME_WAIT, server CLOSED."""
        self.pcap.add(frame(self.client, SERVER, FIN | ACK, self.cnext, self.snext))
        self.cnext += 1
        self.pcap.add(frame(SERVER, self.client, FIN | ACK, self.snext, self.cnext))
        self.snext += 1
        self.pcap.add(frame(self.client, SERVER, ACK, self.cnext, self.snext))


def request(target, extra=b""):
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


def response(body=b"ok"):
    return b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def syn_flood(path, n):
    """n SYNs from distinct clients with distinct ISNs; the multiplier is odd, so i -> ISN is one-to-one."""
    rng = random.Random(7)
    pcap = Pcap(path)
    for i in range(n):
        host = 0x6440_0000 + i  # 100.64.0.0 + i: a distinct address per connection
        client = (f"{host >> 24}.{(host >> 16) & 255}.{(host >> 8) & 255}.{host & 255}", rng.randrange(1024, 65536))
        pcap.add(frame(client, SERVER, SYN, (i * 2654435761 + 12345) & 0xFFFFFFFF, 0), gap=0.000001)
    return pcap.close()


def seq_wrap(path):
    pcap = Pcap(path)
    # Client's first data byte at 2^32 - 40, server's at 2^32 - 60: both streams cross zero mid-exchange.
    conn = Conn(pcap, ("10.0.0.2", 40001), 2**32 - 41, 2**32 - 61)
    conn.handshake()
    conn.client_sends(request(b"/one"))                 # 30 bytes: client stream now at 2^32 - 10
    conn.server_sends(response(b"first"))               # 43 bytes: server stream now at 2^32 - 17
    conn.client_sends(request(b"/two-spans-the-wrap"))  # one 45-byte segment from 2^32 - 10 to 35
    conn.server_sends(response(b"second"))              # one 44-byte segment from 2^32 - 17 to 27
    conn.client_sends(request(b"/three"))               # after the wrap
    conn.server_sends(response(b"third"))
    conn.client_closes()
    return pcap.close()


def bad_rst(path):
    pcap = Pcap(path)
    conn = Conn(pcap, ("10.0.0.2", 40002), 1000, 5000)
    conn.handshake()
    conn.client_sends(request(b"/"))
    conn.server_sends(response())
    # Blind-injection style RSTs: 10 million bytes ahead, and 3 billion (behind, mod 2^32).
    pcap.add(frame(conn.client, SERVER, RST, conn.cnext + 10_000_000, 0))
    pcap.add(frame(SERVER, conn.client, RST | ACK, conn.snext + 3_000_000_000, conn.cnext))
    conn.client_sends(request(b"/after-rst"))
    conn.server_sends(response())
    conn.client_closes()
    return pcap.close()


def overlap(path):
    pcap = Pcap(path)
    conn = Conn(pcap, ("10.0.0.2", 40003), 1000, 5000)
    conn.handshake()
    # Request 1 in order, then retransmitted whole and in part with other bytes: already delivered, dropped.
    first = request(b"/first")
    forged = request(b"/FORGE")
    assert len(first) == len(forged)
    seq = conn.cnext
    pcap.add(frame(conn.client, SERVER, PSH | ACK, seq, conn.snext, first))
    pcap.add(frame(conn.client, SERVER, PSH | ACK, seq, conn.snext, forged))
    pcap.add(frame(conn.client, SERVER, PSH | ACK, seq + 5, conn.snext, forged[5:25]))
    conn.cnext += len(first)
    pcap.add(frame(SERVER, conn.client, ACK, conn.snext, conn.cnext))
    conn.server_sends(response())
    # Request 2: its tail from byte 10 arrives first (held out of order), then its head with 5 other
    # bytes over the tail's first 5: the held copy came first and wins. A full copy comes last, dropped.
    second = request(b"/second")
    seq = conn.cnext
    pcap.add(frame(conn.client, SERVER, PSH | ACK, seq + 10, conn.snext, second[10:]))
    pcap.add(frame(conn.client, SERVER, PSH | ACK, seq, conn.snext, second[:10] + b"XXXXX"))
    pcap.add(frame(conn.client, SERVER, PSH | ACK, seq, conn.snext, second))
    conn.cnext += len(second)
    pcap.add(frame(SERVER, conn.client, ACK, conn.snext, conn.cnext))
    conn.server_sends(response())
    conn.client_closes()
    return pcap.close()


def endless_chunked(path):
    pcap = Pcap(path)
    conn = Conn(pcap, ("10.0.0.2", 40004), 1000, 5000)
    conn.handshake()
    conn.client_sends(request(b"/stream"))
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"1000\r\n" + b"a" * 0x1000 + b"\r\n" + b"7fffffffffffffff\r\n" + b"b" * (100 * MSS)
    conn.server_sends(head + body)
    return pcap.close()


def huge_header(path, size=3 * 1024 * 1024):
    pcap = Pcap(path)
    conn = Conn(pcap, ("10.0.0.2", 40005), 1000, 5000)
    conn.handshake()
    line = b"X-Pad: " + b"p" * 1000 + b"\r\n"
    block = b"GET /huge HTTP/1.1\r\n" + line * (size // len(line))  # never ends with a blank line
    conn.client_sends(block + request(b"/after"))
    conn.server_sends(response())
    conn.client_closes()
    return pcap.close()


def odd_closes(path):
    pcap = Pcap(path)
    # 1. Data after a RST: a request, the server resets, the client's next request arrives anyway.
    a = Conn(pcap, ("10.0.0.2", 40006), 1000, 5000)
    a.handshake()
    a.client_sends(request(b"/a"))
    pcap.add(frame(SERVER, a.client, RST | ACK, a.snext, a.cnext))
    pcap.add(frame(a.client, SERVER, PSH | ACK, a.cnext, a.snext, request(b"/late")))
    # 2. A FIN without a handshake: the first segment of the tuple is the client's FIN.
    b = ("10.0.0.2", 40007)
    pcap.add(frame(b, SERVER, FIN | ACK, 7000, 9000))
    pcap.add(frame(SERVER, b, ACK, 9000, 7001))
    # 3. Duplicate SYN-ACKs with different ISNs, then the client ACKs the first one and sends a request.
    c = Conn(pcap, ("10.0.0.2", 40008), 3000, 8000)
    pcap.add(frame(c.client, SERVER, SYN, c.cnext, 0))
    pcap.add(frame(SERVER, c.client, SYN | ACK, c.snext, c.cnext + 1))
    pcap.add(frame(SERVER, c.client, SYN | ACK, c.snext + 777_777, c.cnext + 1))
    c.cnext += 1
    c.snext += 1
    pcap.add(frame(c.client, SERVER, ACK, c.cnext, c.snext))
    c.client_sends(request(b"/c"))
    c.server_sends(response())
    return pcap.close()


def evil_fragments(path):
    pcap = Pcap(path)
    client = ("10.0.0.2", 40000)
    c = Conn(pcap, client, 1000, 5000)
    c.handshake()

    def fragmented(req, ident, pieces, gaps=None):
        """Sends request `req` from the client as fragments `(offset, end, more)` of one packet."""
        packet = tcp_bytes(client, SERVER, PSH | ACK, c.cnext, c.snext, req)
        for i, (start, end, more) in enumerate(pieces):
            pcap.add(fragment(client, SERVER, ident, start, more, packet[start:end]), gap=(gaps or {}).get(i, 0.0001))

    a = request(b"/a")
    fragmented(a, 1, [(0, 24, True), (24, None, False)])
    c.cnext += len(a)
    c.server_sends(response())
    b = request(b"/b")
    fragmented(b, 2, [(0, 24, True), (16, None, False)])              # overlaps bytes 16-24: discarded
    fragmented(b, 3, [(0, 24, True), (0, 24, True), (24, None, False)])  # an exact duplicate: dropped alone
    c.cnext += len(b)
    c.server_sends(response())
    r = request(b"/c")
    fragmented(r, 4, [(0, 24, True), (24, None, False)], gaps={1: 31.0})  # 31 s apart: the first expired
    c.client_sends(r)                                                  # sent again, whole
    c.server_sends(response())
    pcap.add(fragment(client, SERVER, 5, 65528, False, b"x" * 16))     # ends past 65,535 bytes
    for i in range(5000):
        pcap.add(fragment(("198.18.0.1", 1), SERVER, i, 0, True, b"y" * 8), gap=0.00001)
    c.client_closes()
    return pcap.close()


SMALL = {
    "seq-wrap.pcap": seq_wrap,
    "bad-rst.pcap": bad_rst,
    "overlap.pcap": overlap,
    "endless-chunked.pcap": endless_chunked,
    "huge-header.pcap": huge_header,
    "odd-closes.pcap": odd_closes,
    "evil-fragments.pcap": evil_fragments,
}


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--flood"):
        sys.exit(__doc__)
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    if len(argv) == 4:
        n = int(argv[3])
        path = os.path.join(outdir, f"syn-flood-{n}.pcap")
        print(f"{path}: {syn_flood(path, n)} packets")
        return
    for name, make in SMALL.items():
        path = os.path.join(outdir, name)
        print(f"{path}: {make(path)} packets")
    path = os.path.join(outdir, "syn-flood-5000.pcap")
    print(f"{path}: {syn_flood(path, 5000)} packets")


if __name__ == "__main__":
    main(sys.argv)
