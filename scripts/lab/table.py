#!/usr/bin/env python3
"""Renders the lab's table from the JSON reports that `connscope capture` wrote.

Usage: table.py [--json] OUTDIR N NAME...
Table: one row per experiment. --json: one object per line, the summary and verdict as connscope
wrote them, plus the experiment name, N and the client's error count (from its "done" line).
"""
import json
import re
import sys

STATE_ORDER = ["ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "LAST_ACK",
               "TIME_WAIT", "CLOSED", "SYN_SENT", "SYN_RECEIVED"]


def states(d):
    """{"TIME_WAIT": 5, "CLOSED": 0} -> "TIME_WAIT×5" (zero counts left out)."""
    items = [(k, v) for k, v in d.items() if v]
    items.sort(key=lambda kv: STATE_ORDER.index(kv[0]) if kv[0] in STATE_ORDER else 99)
    return " ".join(f"{k}×{v}" for k, v in items) or "-"


def client_errors(outdir, name):
    try:
        with open(f"{outdir}/{name}.client.log", encoding="utf-8", errors="replace") as f:
            m = re.search(r"^done requests=\d+ errors=(\d+)", f.read(), re.M)
            return int(m.group(1)) if m else None
    except OSError:
        return None


def main():
    args = sys.argv[1:]
    as_json = args[:1] == ["--json"]
    if as_json:
        args = args[1:]
    outdir, n, names = args[0], int(args[1]), args[2:]
    rows = []
    for name in names:
        with open(f"{outdir}/{name}.json", encoding="utf-8") as f:
            report = json.load(f)
        s, v = report["summary"], report["verdict"]
        errs = client_errors(outdir, name)
        if as_json:
            print(json.dumps({"experiment": name, "n": n, "client_errors": errs,
                              "summary": s, "verdict": v}))
            continue
        ff = s["fin_first"]
        req = s["http_requests"]
        codes = ",".join(x["code"] for x in v.get("findings", []))
        verdict = v["reuse"] + (f" [{codes}]" if codes else "")
        if errs:
            verdict += f" CLIENT ERRORS: {errs}"
        rows.append([
            name,
            "n/a (TLS)" if req is None else str(req),
            str(s["connections"]),
            str(s["handshakes"]),
            f"{ff['client']}/{ff['server']}/{ff['none']}",
            f"{states(s['client_states'])} / {states(s['server_states'])}",
            str(s["keepalive_probes"]),
            str(s["tls_client_hellos"]),
            states(s["close_causes"]),
            verdict,
        ])
    if as_json:
        return
    head = ["experiment", "requests", "conns", "handshakes", "FIN first c/s/none",
            "end states client / server", "ka probes", "TLS hellos", "close causes", "verdict [findings]"]
    print(f"N = {n} requests per experiment\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
