#!/usr/bin/env bash
# Builds the seed corpora of the three fuzz targets from fixtures/*.pcap and *.pcapng:
#   corpus/pipeline/     each fixture as a file image (mode byte 0) and as a frame list (mode byte 1);
#   corpus/decode/       each frame of each classic-pcap fixture, behind its link-type pick byte;
#   corpus/http_framer/  each TCP connection's payloads in capture order, in the target's command format.
# Usage: fuzz/seed.sh   (from anywhere; python3 stdlib only). Corpora are not committed.
set -euo pipefail
cd "$(dirname "$0")"
python3 - <<'PY'
import glob, os, struct

# Index of each DLT in the targets' LINKS tables.
LINK_INDEX = {1: 0, 0: 1, 108: 2, 12: 3, 14: 3, 101: 3, 228: 4, 229: 5, 113: 6, 276: 7}
LINK_HEADER = {1: 14, 0: 4, 108: 4, 12: 0, 14: 0, 101: 0, 228: 0, 229: 0, 113: 16, 276: 20}

def frames(path):
    """(dlt, [frame bytes]) of a classic pcap; None for pcapng."""
    data = open(path, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None
    dlt = struct.unpack(e + "I", data[20:24])[0]
    out, at = [], 24
    while at + 16 <= len(data):
        caplen = struct.unpack(e + "I", data[at + 8:at + 12])[0]
        out.append(data[at + 16:at + 16 + caplen])
        at += 16 + caplen
    return dlt, out

def tcp_of(dlt, frame):
    """(src, dst, flags, payload) of a frame's TCP segment, or None (VLAN tags and IPv6 extension headers not followed)."""
    ip = frame[LINK_HEADER[dlt]:]
    if not ip:
        return None
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 15) * 4
        if len(ip) < ihl + 20 or ip[9] != 6:
            return None
        total = struct.unpack(">H", ip[2:4])[0]
        src, dst, tcp, end = ip[12:16], ip[16:20], ip[ihl:], total - ihl
    elif ip[0] >> 4 == 6:
        if len(ip) < 60 or ip[6] != 6:
            return None
        src, dst, tcp, end = ip[8:24], ip[24:40], ip[40:], struct.unpack(">H", ip[4:6])[0]
    else:
        return None
    sport, dport = struct.unpack(">HH", tcp[:4])
    off = (tcp[12] >> 4) * 4
    return (src, sport), (dst, dport), tcp[13], tcp[off:max(off, end)]

def framer_commands(segments, keys):
    """Encodes [(side, payload)] as http_framer commands: in-order segments, both SYNs seen, and
    the fixtures' TLS key logs when `keys` (setup bit 3)."""
    out = bytearray([3 | (8 if keys else 0)])
    for side, payload in segments:
        while payload:
            piece, payload = payload[:4095], payload[4095:]
            n = len(piece)
            out += bytes([side | ((n & 31) << 3), n >> 5]) + piece
    return bytes(out)

def write(target, name, data):
    os.makedirs(f"corpus/{target}", exist_ok=True)
    open(f"corpus/{target}/{name}", "wb").write(data)

counts = {"decode": 0, "http_framer": 0, "pipeline": 0}
for path in sorted(glob.glob("../fixtures/*.pcap") + glob.glob("../fixtures/*.pcapng")):
    name = os.path.basename(path)
    image = open(path, "rb").read()
    write("pipeline", name + ".file", b"\x00" + image)
    counts["pipeline"] += 1
    parsed = frames(path)
    if parsed is None:
        continue
    dlt, fs = parsed
    if dlt not in LINK_INDEX:
        continue
    listing = bytearray([1, LINK_INDEX[dlt]])
    for f in fs:
        listing += struct.pack("<H", len(f)) + f
    write("pipeline", name + ".frames", bytes(listing))
    counts["pipeline"] += 1
    conns = {}
    for i, f in enumerate(fs):
        write("decode", f"{name}.{i}", bytes([LINK_INDEX[dlt], 0]) + f)
        counts["decode"] += 1
        seg = tcp_of(dlt, f)
        if seg is None:
            continue
        src, dst, flags, payload = seg
        key = tuple(sorted([src, dst]))
        conn = conns.setdefault(key, {"client": None, "segments": []})
        if flags & 0x12 == 0x02:  # SYN without ACK: the sender is the client
            conn["client"] = src
        if payload:
            conn["segments"].append((src, payload))
    for j, (key, conn) in enumerate(conns.items()):
        if not conn["segments"]:
            continue
        # Mid-stream (no SYN seen): the endpoint with the higher port is the client.
        client = conn["client"] or max(key, key=lambda endpoint: endpoint[1])
        segs = [(0 if src == client else 1, p) for src, p in conn["segments"]]
        write("http_framer", f"{name}.{j}", framer_commands(segs, name.startswith("https-keylog")))
        counts["http_framer"] += 1
print(" ".join(f"{k}: {v} seeds" for k, v in counts.items()))
PY
