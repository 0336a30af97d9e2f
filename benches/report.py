"""Tables for `scripts/bench.sh`: reads what the run wrote under target/bench/ and prints one
Markdown table per scenario, plus the hot-path check and the targets.

    python3 benches/report.py --out target/bench [--criterion target/criterion]
                              [--update-doc BENCHMARKS.md]

Every figure is the median over rounds with the range (min-max) in brackets; a ratio or a
difference against another mode is taken within each round (the modes of a round ran back to
back) and then summarised the same way. Writes results.json (every statistic, and the raw rows)
and tables.md next to the raw numbers.

Helpers used by bench.sh while it runs:
    --count-lines FILE   {"lines": N, "bad": M}: JSON lines in a log file, and lines that are not
    --hyperfine FILE     one "NAME<TAB>JSON" line per command of a hyperfine --export-json file
"""

import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

MODE_NAMES = {
    "none": "no preload",
    "mcpr": "mcp-redirect",
    "mcpr-sync": "mcp-redirect, async_handshake = false",
    "mcpr-quiet": "mcp-redirect, log.direct = false",
    "mcpr-logoff": "mcp-redirect, log off",
    "pc4": "proxychains4",
    "pc4-dns": "proxychains4 proxy_dns",
    "torsocks": "torsocks",
}


def mode_name(mode):
    return MODE_NAMES.get(mode, mode)


# ---- small helpers -------------------------------------------------------------------------


def median(values):
    return statistics.median(values) if values else None


def si(value, unit=""):
    """3 significant digits with a k/M suffix."""
    if value is None:
        return "n/a"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}"


def num(value, digits=3):
    if value is None:
        return "n/a"
    if abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def spread(values, fmt):
    """'median (min-max)', or 'n/a'."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{fmt(values[0])} (1 run)"
    return f"{fmt(median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def pct(ratio):
    return f"{(ratio - 1) * 100:+.1f}%"


def times(ratio):
    return f"{ratio:.2f}×"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---- the raw rows --------------------------------------------------------------------------


class Run:
    def __init__(self, out):
        self.out = out
        self.rows = []
        with open(os.path.join(out, "raw.jsonl")) as f:
            for line in f:
                if line.strip():
                    self.rows.append(json.loads(line))
        self.meta = json.load(open(os.path.join(out, "meta.json")))
        fence = os.path.join(out, "fence.json")
        self.fence = json.load(open(fence)) if os.path.exists(fence) else {}
        self.failed = [r for r in self.rows if r.get("failed")]

    def values(self, scenario, case, mode, metric):
        """{round: value} for one mode of one case."""
        got = {}
        for row in self.rows:
            if (row["scenario"], row["case"], row["mode"]) == (scenario, case, mode) and "r" in row:
                value = metric(row["r"])
                if value is not None:
                    got[row["round"]] = value
        return got

    def modes(self, scenario, case):
        seen = []
        for row in self.rows:
            if (row["scenario"], row["case"]) == (scenario, case) and row["mode"] not in seen:
                seen.append(row["mode"])
        order = list(MODE_NAMES)
        return sorted(seen, key=lambda m: order.index(m) if m in order else len(order))


def paired(a, b, combine):
    """combine(a[r], b[r]) for every round both have."""
    return [combine(a[r], b[r]) for r in sorted(a) if r in b and b[r]]


def rate(r):
    return r["ops"] / r["wall_s"] if r.get("wall_s") else None


def cpu_us(r):
    return (r["user_s"] + r["sys_s"]) / r["ops"] * 1e6 if r.get("ops") else None


def wall_us(r):
    return r["wall_s"] / r["ops"] * 1e6 * r.get("threads", 1) if r.get("ops") else None


# ---- scenarios -----------------------------------------------------------------------------


def stat(values):
    vals = list(values.values()) if isinstance(values, dict) else list(values)
    if not vals:
        return None
    return {"median": median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def passthrough(run, results):
    rows = []
    for case in ("inet-1t", "inet-2t", "unix-1t", "unix-2t"):
        base_rate = run.values("passthrough", case, "none", rate)
        base_cpu = run.values("passthrough", case, "none", cpu_us)
        for mode in run.modes("passthrough", case):
            r = run.values("passthrough", case, mode, rate)
            c = run.values("passthrough", case, mode, cpu_us)
            vs_rate = paired(r, base_rate, lambda x, y: x / y)
            vs_cpu = paired(c, base_cpu, lambda x, y: x / y)
            results.setdefault("passthrough", {}).setdefault(case, {})[mode] = {
                "connects_per_s": stat(r),
                "cpu_us_per_connect": stat(c),
                "rate_vs_none": stat(vs_rate),
                "cpu_vs_none": stat(vs_cpu),
            }
            label = {"inet-1t": "AF_INET, 1 thread", "inet-2t": "AF_INET, 2 threads",
                     "unix-1t": "AF_UNIX, 1 thread", "unix-2t": "AF_UNIX, 2 threads"}[case]
            rows.append([label, mode_name(mode), spread(list(r.values()), si),
                         "" if mode == "none" else spread(vs_rate, pct),
                         spread(list(c.values()), lambda v: f"{v:.1f}"),
                         "" if mode == "none" else spread(vs_cpu, pct)])
    return ("1. Pass-through connect (direct loopback listener; connect, then reset)",
            table(["case", "mode", "connects/s", "vs no preload", "client CPU µs/connect",
                   "vs no preload"], rows))


def redirect(run, results):
    rows = []
    for case, label in (("socks5", "SOCKS5 (microsocks)"), ("http", "HTTP CONNECT (tinyproxy)")):
        base = {m: (run.values("redirect", case, m, rate), run.values("redirect", case, m, cpu_us))
                for m in ("none", "pc4", "pc4-dns")}
        for mode in run.modes("redirect", case):
            r = run.values("redirect", case, mode, rate)
            c = run.values("redirect", case, mode, cpu_us)
            entry = {"conn_per_s": stat(r), "cpu_us_per_conn": stat(c)}
            cols = []
            for ref in ("pc4", "pc4-dns"):
                vr = paired(r, base[ref][0], lambda x, y: x / y)
                vc = paired(c, base[ref][1], lambda x, y: x / y)
                entry[f"rate_vs_{ref}"] = stat(vr)
                entry[f"cpu_vs_{ref}"] = stat(vc)
                cols.append("" if mode == ref else f"{spread(vr, times)} / {spread(vc, times)}")
            results.setdefault("redirect", {}).setdefault(case, {})[mode] = entry
            shown = "no preload (the client speaks the gateway's protocol)" if mode == "none" else mode_name(mode)
            rows.append([label, shown, spread(list(r.values()), si),
                         spread(list(c.values()), lambda v: f"{v:.1f}")] + cols)
    return ("2. Redirected connect: connect + handshake + request + first byte of the reply",
            table(["gateway", "mode", "connections/s", "client CPU µs/connection",
                   "vs proxychains4: rate / CPU", "vs proxychains4 proxy_dns: rate / CPU"], rows))


def resolve(run, results):
    rows = []
    for case, label, ref in (("routed", "routed name", "pc4-dns"), ("localhost", "localhost (/etc/hosts)", "none")):
        rr = run.values("resolve", case, ref, rate)
        for mode in run.modes("resolve", case):
            r = run.values("resolve", case, mode, rate)
            c = run.values("resolve", case, mode, cpu_us)
            vs = paired(r, rr, lambda x, y: x / y)
            results.setdefault("resolve", {}).setdefault(case, {})[mode] = {
                "lookups_per_s": stat(r), "cpu_us_per_lookup": stat(c), f"rate_vs_{ref}": stat(vs)}
            how = {"routed": {"mcpr": "fake address", "mcpr-logoff": "fake address",
                              "pc4-dns": "proxy_dns fake address", "torsocks": ".onion cookie"}}
            shown = mode_name(mode) + (f" ({how[case][mode]})" if case in how and mode in how[case] else "")
            rows.append([label, shown, spread(list(r.values()), si),
                         spread(list(c.values()), lambda v: f"{v:.2f}"),
                         "" if mode == ref else spread(vs, times)])
    return ("3. Name resolution: getaddrinfo(name, \"443\") + freeaddrinfo",
            table(["name", "mode", "lookups/s", "client CPU µs/lookup",
                   "rate vs proxychains4 proxy_dns (routed) / no preload (localhost)"], rows))


def rules(criterion_dir, results):
    if not criterion_dir:
        return None
    rows = []
    for size in (10, 1000, 10000, 100000):
        cells = [f"{size:,}"]
        for kind in ("host", "addr", "lookup"):
            path = os.path.join(criterion_dir, "decide", kind, str(size), "new", "estimates.json")
            if not os.path.exists(path):
                cells.append("n/a")
                continue
            est = json.load(open(path))["median"]
            ci = est["confidence_interval"]
            results.setdefault("rules", {}).setdefault(str(size), {})[kind] = {
                "median_ns": est["point_estimate"], "ci95_low_ns": ci["lower_bound"],
                "ci95_high_ns": ci["upper_bound"]}
            cells.append(f"{est['point_estimate']:.0f} ({ci['lower_bound']:.0f}–{ci['upper_bound']:.0f})")
        rows.append(cells)
    return ("4. Rule-table scale: ns per decision, Criterion median (95% confidence interval)",
            table(["rules", "connect, hostname (fake address)", "connect, literal address",
                   "lookup (fake or real?)"], rows))


def start(run, results):
    rows = []
    programs = (("true", "/bin/true"), ("python3", "python3 -c pass"), ("node", "node -e 0"),
                ("lookup", "C program, one getaddrinfo (loads the config)"))
    ms = lambda r: r["median_s"] * 1e3
    cpu_ms = lambda r: (r["user_s"] + r["system_s"]) * 1e3 if "user_s" in r else None
    for prog, label in programs:
        base_t = run.values("start", prog, "none", ms)
        base_c = run.values("start", prog, "none", cpu_ms)
        base_m = run.values("rss", prog, "none", lambda r: r["maxrss_kb"] / 1024)
        for mode in run.modes("start", prog):
            t = run.values("start", prog, mode, ms)
            c = run.values("start", prog, mode, cpu_ms)
            fastest = run.values("start", prog, mode, lambda r: r["min_s"] * 1e3)
            m = run.values("rss", prog, mode, lambda r: r["maxrss_kb"] / 1024)
            dt = paired(t, base_t, lambda x, y: x - y)
            dc = paired(c, base_c, lambda x, y: x - y)
            dm = paired(m, base_m, lambda x, y: x - y)
            results.setdefault("start", {}).setdefault(prog, {})[mode] = {
                "ms": stat(t), "added_ms": stat(dt), "cpu_ms": stat(c), "added_cpu_ms": stat(dc),
                "fastest_ms": min(fastest.values()) if fastest else None,
                "maxrss_mib": stat(m), "added_mib": stat(dm)}
            rows.append([label, mode_name(mode), spread(list(t.values()), lambda v: f"{v:.2f}"),
                         "" if mode == "none" else spread(dt, lambda v: f"{v:+.2f}"),
                         f"{min(fastest.values()):.2f}" if fastest else "n/a",
                         spread(list(c.values()), lambda v: f"{v:.2f}"),
                         "" if mode == "none" else spread(dc, lambda v: f"{v:+.2f}"),
                         spread(list(m.values()), lambda v: f"{v:.1f}") if m else "",
                         "" if mode == "none" or not m else spread(dm, lambda v: f"{v:+.2f}")])
    return ("5. Process start (hyperfine: median wall time per round; CPU = user + system, mean per round) and peak RSS",
            table(["program", "mode", "wall ms", "added ms", "fastest run ms", "CPU ms",
                   "added CPU ms", "peak RSS MiB", "added MiB"], rows))


def data(run, results):
    rows = []
    for case, label in (("socks5", "SOCKS5 (microsocks)"), ("http", "HTTP CONNECT (tinyproxy)"),
                        ("no-gateway", "none: curl straight to the origin")):
        mib = lambda r: r["bytes_per_s"] / 2**20
        cpu = lambda r: (r["curl"]["user_s"] + r["curl"]["sys_s"]) / (r["bytes"] / 2**30) if r.get("bytes") else None
        base = run.values("data", case, "none", mib)
        sync = run.values("data", case, "mcpr-sync", mib)
        for mode in run.modes("data", case):
            v = run.values("data", case, mode, mib)
            c = run.values("data", case, mode, cpu)
            vs = paired(v, base, lambda x, y: x / y)
            vs_sync = paired(v, sync, lambda x, y: x / y) if mode == "mcpr" else []
            relayed = run.values("data", case, mode, lambda r: r.get("relayed"))
            size = next((r["r"]["bytes"] for r in run.rows if r["scenario"] == "data" and "r" in r), 0)
            results.setdefault("data", {}).setdefault(case, {})[mode] = {
                "mib_per_s": stat(v), "curl_cpu_s_per_gib": stat(c), "vs_curl_to_gateway": stat(vs),
                "vs_sync": stat(vs_sync), "relayed_runs": sum(1 for x in relayed.values() if x),
                "bytes": size}
            shown = ("curl speaking to the gateway itself" if case != "no-gateway" else "no preload") if mode == "none" else mode_name(mode)
            if mode == "mcpr":
                shown += f" (relay: {sum(1 for x in relayed.values() if x)} of {len(relayed)} transfers)"
            rows.append([label, shown, spread(list(v.values()), lambda x: f"{x:,.0f}"),
                         "" if mode == "none" else spread(vs, pct),
                         spread(vs_sync, times) if vs_sync else "",
                         spread(list(c.values()), lambda x: f"{x:.2f}")])
    size = next((r["r"]["bytes"] for r in run.rows if r["scenario"] == "data" and "r" in r), 0)
    return (f"6. Data path: curl downloads {size / 2**20:,.0f} MiB through the gateway",
            table(["gateway", "mode", "MiB/s", "vs curl to the gateway",
                   "relay vs async_handshake = false", "curl CPU s per GiB"], rows))


def log_writer(run, results):
    rows = []
    for case, label in (("8-threads", "1 process, 8 threads"), ("4-processes", "4 processes, 1 thread each")):
        def lines_per_s(r):
            wall = r["run"]["wall_s"] if "run" in r else max(x["wall_s"] for x in r["runs"])
            return r["lines"]["lines"] / wall

        v = run.values("log", case, "mcpr", lines_per_s)
        bad = sum(r["lines"]["bad"] for r in (row["r"] for row in run.rows
                  if row["scenario"] == "log" and row["case"] == case and "r" in row))
        total = sum(r["lines"]["lines"] for r in (row["r"] for row in run.rows
                    if row["scenario"] == "log" and row["case"] == case and "r" in row))
        results.setdefault("log", {})[case] = {"lines_per_s": stat(v), "lines": total, "bad_lines": bad}
        rows.append([label, spread(list(v.values()), si), f"{total:,} lines, {bad} not valid JSON"])
    first = table(["writers sharing one log file (a routed lookup = one line)", "lines/s",
                   "integrity"], rows)

    rows = []
    for scenario, case, label in (("passthrough", "inet-1t", "direct connect (AF_INET)"),
                                  ("redirect", "socks5", "redirected connect (SOCKS5)"),
                                  ("redirect", "http", "redirected connect (HTTP)")):
        cells = [label]
        off = run.values(scenario, case, "mcpr-logoff", wall_us)
        for mode in ("mcpr", "mcpr-quiet", "mcpr-logoff"):
            w = run.values(scenario, case, mode, wall_us)
            if not w:
                cells.append("n/a")
                continue
            d = paired(w, off, lambda x, y: x - y)
            cells.append(spread(list(w.values()), lambda x: f"{x:.1f}")
                         + ("" if mode == "mcpr-logoff" else f"; {spread(d, lambda x: f'{x:+.1f}')} vs off"))
            results.setdefault("log_latency", {}).setdefault(f"{scenario}/{case}", {})[mode] = {
                "us_per_connect": stat(w), "vs_off_us": stat(d)}
        rows.append(cells)
    second = table(["µs per connect (wall, 1 thread)", "log to a file", "log.direct = false",
                    "log off"], rows)
    return ("7. Log writer", first + "\n\nConnect latency with the log on and off:\n\n" + second)


# ---- the relay (issue 14): routed connects on non-blocking sockets ---------------------------

RELAY_MODES = {
    "none": "no preload",
    "mcpr": "mcp-redirect, relay (the default)",
    "mcpr-sync": "mcp-redirect, async_handshake = false",
    "pc4": "proxychains4",
}


def relay_mode(mode, floor=None):
    if mode == "none" and floor:
        return f"no preload ({floor})"
    return RELAY_MODES.get(mode, mode_name(mode))


def eventloop(run, results):
    rows = []
    for client, label in (("node", "Node fetch()"), ("python", "Python asyncio")):
        sync = run.values("eventloop", client, "mcpr-sync", lambda r: r["run"]["wall_s"])
        for mode in ("none", "mcpr", "mcpr-sync", "pc4"):
            w = run.values("eventloop", client, mode, lambda r: r["run"]["wall_s"])
            if not w:
                continue
            d = run.values("eventloop", client, mode, lambda r: r["run"]["loop_delay_max_ms"])
            tick = run.values("eventloop", client, mode, lambda r: r["run"].get("tick_late_max_ms"))
            held = run.values("eventloop", client, mode, lambda r: r["held_max"])
            relayed = run.values("eventloop", client, mode, lambda r: r["relayed"])
            vs = paired(w, sync, lambda x, y: x / y) if mode != "mcpr-sync" else []
            results.setdefault("eventloop", {}).setdefault(client, {})[mode] = {
                "wall_s": stat(w), "loop_delay_max_ms": stat(d), "tick_late_max_ms": stat(tick),
                "held_at_once": stat(held), "relayed_connects": stat(relayed), "vs_sync": stat(vs)}
            rows.append([label, relay_mode(mode, "straight to the origin"),
                         spread(list(w.values()), lambda x: f"{x:.2f}"),
                         spread(vs, times) if vs else "",
                         spread(list(d.values()), lambda x: f"{x:,.0f}"),
                         "" if mode == "none" else f"{median(list(held.values())):g}",
                         f"{median(list(relayed.values())):g}"])
    delay = next((r["r"].get("delay_s") for r in run.rows if r["scenario"] == "eventloop" and "r" in r), None)
    results.setdefault("eventloop", {})["delay_s"] = delay
    held_for = f" {delay * 1000:.0f} ms" if delay else ""
    return (f"8. Event loops: 8 requests at once through an HTTP CONNECT gateway that holds each CONNECT{held_for} "
            "(benches/slow_gateway.py)",
            table(["client", "mode", "wall s, all 8", "vs async_handshake = false",
                   "event loop's longest delay, ms", "CONNECTs the gateway held at once",
                   "connects the relay carried"], rows))


def connect_time(run, results):
    rows = []
    f1 = lambda x: f"{x:.1f}"
    for mode in ("none", "mcpr", "mcpr-sync", "pc4"):
        get = lambda key, p: run.values("connect", "socks5", mode, lambda r: r[key][p])
        ret50, ret99 = get("return_us", "p50"), get("return_us", "p99")
        if not ret50:
            continue
        rdy50, rdy99 = get("ready_us", "p50"), get("ready_us", "p99")
        einp = run.values("connect", "socks5", mode, lambda r: r["einprogress"] / r["n"])
        n = next((r["r"]["n"] for r in run.rows if r["scenario"] == "connect" and "r" in r), None)
        results.setdefault("connect", {})[mode] = {
            "return_p50_us": stat(ret50), "return_p99_us": stat(ret99),
            "ready_p50_us": stat(rdy50), "ready_p99_us": stat(rdy99),
            "einprogress_share": stat(einp), "n": n}
        rows.append([relay_mode(mode, "a loopback listener, no gateway"),
                     spread(list(ret50.values()), f1), spread(list(ret99.values()), f1),
                     spread(list(rdy50.values()), f1), spread(list(rdy99.values()), f1),
                     f"{median(list(einp.values())) * 100:.0f}%"])
    n = results.get("connect", {}).get("mcpr", {}).get("n", "n/a")
    return (f"9. connect() on a non-blocking socket, routed through SOCKS5 (microsocks): µs, over {n} "
            "connects per round",
            table(["mode", "connect() returns: p50", "p99", "connected (writable): p50", "p99",
                   "returned EINPROGRESS"], rows))


def rtt(run, results):
    rows = []
    f1 = lambda x: f"{x:.1f}"
    sync50 = run.values("rtt", "socks5", "mcpr-sync", lambda r: r["rtt_us"]["p50"])
    syncm = run.values("rtt", "socks5", "mcpr-sync", lambda r: r["rtt_us"]["mean"])
    n = next((r["r"]["n"] for r in run.rows if r["scenario"] == "rtt" and "r" in r), "n/a")
    for mode in ("none", "mcpr", "mcpr-sync"):
        p50 = run.values("rtt", "socks5", mode, lambda r: r["rtt_us"]["p50"])
        if not p50:
            continue
        p99 = run.values("rtt", "socks5", mode, lambda r: r["rtt_us"]["p99"])
        mean = run.values("rtt", "socks5", mode, lambda r: r["rtt_us"]["mean"])
        a50 = paired(p50, sync50, lambda x, y: x - y) if mode == "mcpr" else []
        am = paired(mean, syncm, lambda x, y: x - y) if mode == "mcpr" else []
        results.setdefault("rtt", {})[mode] = {
            "p50_us": stat(p50), "p99_us": stat(p99), "mean_us": stat(mean),
            "added_p50_us": stat(a50), "added_mean_us": stat(am), "n": n}
        rows.append([relay_mode(mode, "straight to the echo server"),
                     spread(list(p50.values()), f1), spread(list(p99.values()), f1),
                     spread(list(mean.values()), f1),
                     f"{spread(a50, lambda x: f'{x:+.1f}')} / {spread(am, lambda x: f'{x:+.1f}')}"
                     if a50 else ""])
    return (f"10. Established routed connection: round trip of 64 bytes to an echo server through "
            f"SOCKS5, µs ({n:,} round trips per round)" if isinstance(n, int) else
            "10. Established routed connection: round trip of 64 bytes",
            table(["mode", "p50", "p99", "mean", "added by the relay: p50 / mean"], rows))


def inflight(run, results):
    rows = []
    vals = {k: run.values("inflight", "socks5", "mcpr", lambda r, k=k: r[k])
            for k in ("fds_per_conn", "rss_bytes_per_conn", "kernel_tcp_bytes_per_conn", "pending",
                      "connect_us_mean", "n")}
    if not vals["n"]:
        return None
    n = median(list(vals["n"].values()))
    results["inflight"] = {k: stat(v) for k, v in vals.items()}
    rows.append([f"{n:,.0f}", spread(list(vals["fds_per_conn"].values()), lambda x: f"{x:.2f}"),
                 spread(list(vals["rss_bytes_per_conn"].values()), lambda x: f"{x:,.0f}"),
                 spread([v / 1024 for v in vals["kernel_tcp_bytes_per_conn"].values()], lambda x: f"{x:,.1f}"),
                 f"{median(list(vals['pending'].values())):,.0f}",
                 spread(list(vals["connect_us_mean"].values()), lambda x: f"{x:.1f}")])
    return ("11. Relayed handshakes in flight (a gateway that accepts and never answers): cost per connection",
            table(["handshakes in flight", "descriptors", "RSS bytes (the process)",
                   "kernel TCP memory, KiB (sockstat, whole machine)", "still in flight when counted",
                   "connect() µs, mean"], rows))


def relay_targets(results):
    rows = []
    el = results.get("eventloop", {})
    for client, label in (("node", "Node fetch()"), ("python", "Python asyncio")):
        m = el.get(client, {})
        w = (m.get("mcpr") or {}).get("wall_s")
        if w:
            ctx = ", ".join(f"{RELAY_MODES[k]} {m[k]['wall_s']['median']:.2f} s"
                            for k in ("mcpr-sync", "pc4", "none") if m.get(k, {}).get("wall_s"))
            held = f" {el['delay_s'] * 1000:.0f} ms" if el.get("delay_s") else ""
            rows.append([f"8 parallel requests through a gateway that holds each CONNECT{held}, {label}: "
                         "< 1.5 s with the relay",
                         f"{w['median']:.2f} s ({ctx})",
                         "met" if w["median"] < 1.5 else f"missed: {w['median']:.2f} s"])
    d = results.get("data", {})
    for case in ("socks5", "http"):
        v = (d.get(case, {}).get("mcpr") or {}).get("vs_sync")
        if v:
            rows.append([f"throughput through {case}: relay ≥ 0.9× async_handshake = false",
                         f"{v['median']:.2f}×", "met" if v["median"] >= 0.9 else f"missed: {v['median']:.2f}×"])
    r = results.get("rtt", {}).get("mcpr", {})
    if r.get("added_mean_us"):
        a, b = r["added_p50_us"]["median"], r["added_mean_us"]["median"]
        rows.append(["round trip of an established connection: < 50 µs added by the relay",
                     f"p50 {a:+.1f} µs, mean {b:+.1f} µs",
                     "met" if max(a, b) < 50 else f"missed: {max(a, b):+.1f} µs"])
    f = (results.get("inflight") or {}).get("fds_per_conn")
    if f:
        rows.append(["descriptors per relayed connection: 3 (the program's, two of the relay's)",
                     f"{f['median']:.2f}", "as designed" if abs(f["median"] - 3) < 0.05 else "not 3"])
    if not rows:
        return None
    return ("Targets (issue 14), at the median", table(["target", "measured", "verdict"], rows))


def strace_counts(path):
    counts = {}
    for line in open(path):
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and not line.lstrip().startswith("-"):
            name = parts[-1]
            calls = next((int(p) for p in parts[3:4] if p.isdigit()), None)
            if calls is not None and name != "total":
                counts[name] = calls
    return counts


def hotpath(run, results):
    rows = []
    sdir = os.path.join(run.out, "strace")
    for kind in ("inet", "unix", "socks5", "http", "socks5nb"):
        for mode in MODE_NAMES:
            pattern = re.compile(re.escape(f"{kind}-{mode}-") + r"(\d+)\.txt$")
            files = sorted((p for p in glob.glob(os.path.join(sdir, f"{kind}-*.txt"))
                            if pattern.search(os.path.basename(p))),
                           key=lambda p: int(pattern.search(os.path.basename(p)).group(1)))
            if len(files) != 2:
                continue
            n1, n2 = (int(pattern.search(os.path.basename(p)).group(1)) for p in files)
            a, b = strace_counts(files[0]), strace_counts(files[1])
            per = {k: (b.get(k, 0) - a.get(k, 0)) / (n2 - n1) for k in set(a) | set(b)}
            per = {k: round(v, 2) for k, v in per.items() if round(v, 2) != 0}
            allocs = run.values("allocs", kind, mode, lambda r: r["allocs"] / r["ops"])
            results.setdefault("hotpath", {}).setdefault(kind, {})[mode] = {
                "syscalls_per_connect": per, "allocs_per_connect": median(list(allocs.values())) if allocs else None}
            listed = ", ".join(f"{k} {v:g}" for k, v in sorted(per.items(), key=lambda kv: (-kv[1], kv[0])))
            rows.append([{"inet": "direct connect, AF_INET", "unix": "connect, AF_UNIX",
                          "socks5": "redirected connection, SOCKS5",
                          "socks5nb": "redirected connection, SOCKS5, non-blocking socket",
                          "http": "redirected connection, HTTP CONNECT"}[kind],
                         "no preload (the client speaks the gateway's protocol)"
                         if mode == "none" and kind in ("socks5", "http", "socks5nb")
                         else "mcp-redirect, relay" if mode == "mcpr" and kind == "socks5nb"
                         else mode_name(mode),
                         f"{sum(per.values()):g}", listed,
                         f"{median(list(allocs.values())):g}" if allocs else "n/a"])
    for case, label in (("resolve-routed", "routed lookup"),):
        for mode in ("mcpr", "mcpr-logoff"):
            allocs = run.values("allocs", case, mode, lambda r: r["allocs"] / r["ops"])
            if allocs:
                results.setdefault("hotpath", {}).setdefault(case, {})[mode] = {
                    "allocs_per_op": median(list(allocs.values()))}
                rows.append([label, mode_name(mode), "", "", f"{median(list(allocs.values())):.1f}"])
    return ("Hot path check: system calls (strace -c) and allocations (counting malloc) per call",
            table(["call (by the client process)", "mode", "syscalls per call", "which",
                   "allocations per call"], rows))


def headline(results):
    """One row per measure, one column per mode: the medians only (the ranges are below)."""
    modes = ["none", "mcpr", "mcpr-quiet", "pc4", "pc4-dns", "torsocks"]

    def cell(entry, key, fmt):
        v = (entry or {}).get(key)
        return fmt(v["median"]) if v else "–"

    def row(label, section, case, key, fmt, alias=None):
        got = results.get(section, {}).get(case, {})
        cells = []
        for m in modes:
            e = got.get(m)
            if e is None and alias and m in alias:
                e = got.get(alias[m])
            cells.append("–" if m == "none" and key.startswith("added") else cell(e, key, fmt))
        return [label] + cells

    us = lambda v: f"{v:.1f} µs"
    rows = [
        row("direct connect, AF_INET, 1 thread: connects/s", "passthrough", "inet-1t", "connects_per_s", si),
        row("direct connect, AF_INET, 1 thread: client CPU", "passthrough", "inet-1t", "cpu_us_per_connect", us),
        row("connect, AF_UNIX, 1 thread: client CPU", "passthrough", "unix-1t", "cpu_us_per_connect", us),
        row("redirected, SOCKS5: connections/s", "redirect", "socks5", "conn_per_s", si),
        row("redirected, SOCKS5: client CPU per connection", "redirect", "socks5", "cpu_us_per_conn", us),
        row("redirected, HTTP CONNECT: connections/s", "redirect", "http", "conn_per_s", si),
        row("redirected, HTTP CONNECT: client CPU per connection", "redirect", "http", "cpu_us_per_conn", us),
        row("routed name: lookups/s", "resolve", "routed", "lookups_per_s", si),
        row("localhost: lookups/s", "resolve", "localhost", "lookups_per_s", si),
        row("start, /bin/true: ms added", "start", "true", "added_ms", lambda v: f"{v:+.2f}"),
        row("start, C program's first lookup: ms added", "start", "lookup", "added_ms", lambda v: f"{v:+.2f}"),
        row("start, C program's first lookup: MiB RSS added", "start", "lookup", "added_mib", lambda v: f"{v:+.2f}"),
        row("1 GiB through SOCKS5: MiB/s", "data", "socks5", "mib_per_s", lambda v: f"{v:,.0f}"),
    ]
    rules10k = results.get("rules", {}).get("10000", {})
    if rules10k:
        rows.append(["rule decision, 10,000 rules (hostname / address)", "–",
                     f"{rules10k['host']['median_ns']:.0f} / {rules10k['addr']['median_ns']:.0f} ns"
                     if "host" in rules10k and "addr" in rules10k else "–", "", "–", "–", "–"])
    header = ["median of the rounds", "no preload", "mcp-redirect", "mcp-redirect, log.direct = false",
              "proxychains4", "proxychains4 proxy_dns", "torsocks"]
    return ("Headline (medians; the tables below give the ranges). No preload = the client itself "
            "speaks SOCKS5 / HTTP CONNECT in the redirected rows, and curl does in the data row",
            table(header, rows))


def targets(results):
    rows = []
    pt = results.get("passthrough", {})
    for mode in ("mcpr-quiet", "mcpr"):
        worst = None
        cells = []
        for case in ("inet-1t", "inet-2t", "unix-1t", "unix-2t"):
            e = pt.get(case, {}).get(mode, {})
            s_rate, s_cpu = e.get("rate_vs_none"), e.get("cpu_vs_none")
            if s_rate and s_cpu:
                cells.append(f"{case}: rate {pct(s_rate['median'])}, CPU {pct(s_cpu['median'])}")
                # Slower by more than 3% on either measure counts against the target.
                w = min(s_rate["median"], 1 / s_cpu["median"])
                worst = w if worst is None else min(worst, w)
        if worst is not None:
            verdict = "met" if worst >= 0.97 else f"missed by {(0.97 - worst) * 100:.1f} points"
            rows.append([f"pass-through within 3% of no preload ({mode_name(mode)})",
                         "; ".join(cells), verdict])
    rd = results.get("redirect", {})
    for case in ("socks5", "http"):
        m = rd.get(case, {}).get("mcpr", {})
        for ref in ("pc4", "pc4-dns"):
            c, r = m.get(f"cpu_vs_{ref}"), m.get(f"rate_vs_{ref}")
            if c and r:
                ok_c, ok_r = c["median"] <= 0.5, r["median"] >= 1.0
                verdict = ("met" if ok_c and ok_r else
                           "missed: " + ", ".join(x for x in (
                               None if ok_c else f"CPU {c['median']:.2f}× (target 0.50×)",
                               None if ok_r else f"rate {r['median']:.2f}× (target ≥ 1×)") if x))
                rows.append([f"redirected ({case}): CPU ≤ ½ and rate ≥ {mode_name(ref)}",
                             f"CPU {c['median']:.2f}×, rate {r['median']:.2f}×", verdict])
    rs = results.get("resolve", {}).get("routed", {})
    for mode in ("mcpr", "mcpr-logoff"):
        s = rs.get(mode, {}).get("rate_vs_pc4-dns")
        if s:
            rows.append([f"routed lookups ≥ 10× proxychains4 proxy_dns ({mode_name(mode)})",
                         f"{s['median']:.1f}×", "met" if s["median"] >= 10 else
                         f"missed: {s['median']:.1f}× of 10×"])
    rl = results.get("rules", {}).get("10000", {})
    if rl:
        worst = max(v["median_ns"] for v in rl.values())
        rows.append(["rule decision, 10,000 rules: < 2 µs median",
                     ", ".join(f"{k} {v['median_ns']:.0f} ns" for k, v in rl.items()),
                     "met" if worst < 2000 else f"missed: {worst:.0f} ns"])
    st = results.get("start", {})
    for prog in ("true", "python3", "node", "lookup"):
        m = st.get(prog, {}).get("mcpr")
        if m and m.get("added_ms"):
            a = m["added_ms"]["median"]
            c = (m.get("added_cpu_ms") or {}).get("median")
            rss = (m.get("added_mib") or {}).get("median")
            ok = a < 1 and (rss is None or rss < 2)
            rows.append([f"process start ({prog}): < 1 ms and < 2 MiB RSS added",
                         f"wall {a:+.2f} ms, CPU {c:+.2f} ms, RSS {rss:+.2f} MiB"
                         if c is not None and rss is not None else f"{a:+.2f} ms",
                         "met" if ok else "missed: " + ", ".join(x for x in (
                             None if a < 1 else f"{a - 1:.2f} ms over",
                             None if rss is None or rss < 2 else f"{rss - 2:.2f} MiB over") if x)])
    return ("Targets (issue 8), at the median", table(["target", "measured", "verdict"], rows))


def machine(run):
    m = run.meta
    loads = []
    load_file = os.path.join(run.out, "load.txt")
    if os.path.exists(load_file):
        loads = [line.split() for line in open(load_file)]
    peak = max((float(l[1]) for l in loads if len(l) > 1), default=None)
    busy = [int(x.split("=")[1]) for l in loads for x in l if x.startswith("busy=")]
    v = m["versions"]
    lines = [
        f"- Command: `{m['command']}`, {m['rounds']} rounds{' (smoke: numbers meaningless)' if m['smoke'] else ''}; {m['date']}; commit {m['commit']}",
        f"- Machine: {m['nproc']} CPUs, {m['cpu']}, {m['mem_gib']} GiB, Linux {m['kernel']}",
        f"- Load average (1, 5, 15 min) when measuring began: {m['load_before']}"
        + (f" (after waiting {m['load_wait_s']} s for it to fall)" if m.get("load_wait_s") else "")
        + f"; 1-minute peak during the run, the benchmark's own processes included: {peak}"
        + (f"; CPU used by other work just before each round: {', '.join(f'{b}%' for b in busy)}" if busy else ""),
        f"- Peers: proxychains4 {v['proxychains4']}, torsocks {v['torsocks']}, microsocks {v['microsocks']}, tinyproxy {v['tinyproxy']}, hyperfine {v['hyperfine']}, curl {v['curl']}, python3 {v['python3']}, node {v['node']}",
        f"- libmcp_redirect.so: {m['library_bytes']:,} bytes",
    ]
    f = run.fence
    if f:
        lines.append(f"- DNS fence: {'sentinel on 127.0.0.1:53' if f.get('sentinel') else 'NO sentinel'}, "
                     f"{f.get('dns_queries')} queries received; {f.get('failures')} failed measurements")
    return "\n".join(lines)


# ---- charts: hand-written SVG, so that the benchmark needs no plotting package ---------------

SVG_FONT = 'font-family="DejaVu Sans, Arial, sans-serif" font-size="12"'


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def redirect_chart(results):
    """Client CPU per redirected connection: one bar per mode (median), a line for the range."""
    rows = []
    for case, label in (("socks5", "SOCKS5"), ("http", "HTTP CONNECT")):
        for mode, entry in results.get("redirect", {}).get(case, {}).items():
            c = entry.get("cpu_us_per_conn")
            if c and c.get("median") is not None:
                rows.append((f"{label}: {mode_name(mode)}", c["median"], c["min"], c["max"], mode))
    if not rows:
        return None
    left, bar_h, gap, width = 330, 16, 6, 760
    top = 40
    height = top + len(rows) * (bar_h + gap) + 40
    most = max(r[3] for r in rows) * 1.1
    x = lambda v: left + (width - left - 20) * v / most
    colour = {"none": "#888888", "pc4": "#d95f02", "pc4-dns": "#e6ab02", "torsocks": "#7570b3"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" {SVG_FONT}>',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           '<text x="10" y="20" font-size="14">Redirected connection, client CPU µs per connection '
           '(median; the line: range over rounds)</text>']
    for i, (label, med, lo, hi, mode) in enumerate(rows):
        y = top + i * (bar_h + gap)
        fill = colour.get(mode, "#1b9e77")
        out.append(f'<text x="{left - 6}" y="{y + bar_h - 4}" text-anchor="end">{esc(label)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{x(med) - left:.1f}" height="{bar_h}" fill="{fill}"/>')
        out.append(f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{y + bar_h / 2}" y2="{y + bar_h / 2}" '
                   f'stroke="black"/>')
        out.append(f'<text x="{x(hi) + 4:.1f}" y="{y + bar_h - 4}">{med:.1f}</text>')
    axis_y = top + len(rows) * (bar_h + gap) + 4
    out.append(f'<line x1="{left}" x2="{width - 20}" y1="{axis_y}" y2="{axis_y}" stroke="black"/>')
    step = 25 if most > 100 else 10
    for v in range(0, int(most) + 1, step):
        out.append(f'<text x="{x(v):.1f}" y="{axis_y + 16}" text-anchor="middle">{v}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def rules_chart(results):
    """ns per decision against the number of rules, log scale: flat is what an index buys."""
    rl = results.get("rules", {})
    sizes = sorted(int(k) for k in rl)
    if not sizes:
        return None
    kinds = (("host", "connect, hostname", "#1b9e77"), ("addr", "connect, literal address", "#d95f02"),
             ("lookup", "lookup", "#7570b3"))
    width, height, left, right, top, bottom = 640, 360, 60, 200, 40, 50
    most = max(v["median_ns"] for k in rl for v in rl[k].values()) * 1.2
    lo_s, hi_s = math.log10(sizes[0]), math.log10(sizes[-1])
    x = lambda n: left + (width - left - right) * (math.log10(n) - lo_s) / ((hi_s - lo_s) or 1)
    y = lambda ns: height - bottom - (height - top - bottom) * ns / most
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" {SVG_FONT}>',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           '<text x="10" y="20" font-size="14">Rule decision: ns per decision (Criterion median) '
           'by number of rules</text>',
           f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}" stroke="black"/>',
           f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" stroke="black"/>']
    for n in sizes:
        out.append(f'<text x="{x(n):.1f}" y="{height - bottom + 16}" text-anchor="middle">{n:,}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">rules '
               '(log scale)</text>')
    step = 50 if most > 200 else 25
    for v in range(0, int(most) + 1, step):
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for i, (kind, label, colour) in enumerate(kinds):
        points = [(x(n), y(rl[str(n)][kind]["median_ns"])) for n in sizes if kind in rl.get(str(n), {})]
        if not points:
            continue
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                   + " ".join(f"{a:.1f},{b:.1f}" for a, b in points) + '"/>')
        for a, b in points:
            out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>')
        ly = top + 10 + i * 18
        out.append(f'<rect x="{width - right + 12}" y="{ly - 9}" width="12" height="4" fill="{colour}"/>')
        out.append(f'<text x="{width - right + 30}" y="{ly - 4}">{esc(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_charts(results, out_dir, doc_dir=None):
    """target/bench/*.svg, and with --update-doc the copies BENCHMARKS.md shows."""
    for name, svg in (("redirect.svg", redirect_chart(results)), ("rules.svg", rules_chart(results))):
        if svg is None:
            continue
        open(os.path.join(out_dir, name), "w").write(svg)
        if doc_dir:
            os.makedirs(doc_dir, exist_ok=True)
            open(os.path.join(doc_dir, name), "w").write(svg)


def report(args):
    run = Run(args.out)
    results = {}
    sections = [passthrough(run, results), redirect(run, results), resolve(run, results)]
    r = rules(args.criterion, results)
    if r:
        sections.append(r)
    sections += [start(run, results), data(run, results), log_writer(run, results),
                 eventloop(run, results), connect_time(run, results), rtt(run, results)]
    sections += [s for s in (inflight(run, results),) if s]
    sections.append(hotpath(run, results))
    sections.append(targets(results))
    sections += [s for s in (relay_targets(results),) if s]
    sections.insert(0, headline(results))
    text = machine(run) + "\n\n" + "\n\n".join(f"### {title}\n\n{body}" for title, body in sections) + "\n"
    if run.failed:
        text += "\nFailed measurements: " + ", ".join(
            f"{r['scenario']}/{r['case']}/{r['mode']} (round {r['round']})" for r in run.failed) + "\n"
    open(os.path.join(args.out, "tables.md"), "w").write(text)
    json.dump({"meta": run.meta, "fence": run.fence, "results": results, "raw": run.rows},
              open(os.path.join(args.out, "results.json"), "w"), indent=1)
    doc_dir = os.path.join(os.path.dirname(os.path.abspath(args.update_doc)), "docs", "bench") \
        if args.update_doc else None
    write_charts(results, args.out, doc_dir)
    print(text)
    if args.update_doc:
        doc = open(args.update_doc).read()
        begin, end = "<!-- scripts/bench.sh tables: begin -->", "<!-- scripts/bench.sh tables: end -->"
        if begin not in doc or end not in doc:
            print(f"report: {args.update_doc} has no generated section to replace", file=sys.stderr)
            return 1
        head, rest = doc.split(begin, 1)
        tail = rest.split(end, 1)[1]
        open(args.update_doc, "w").write(head + begin + "\n\n" + text + "\n" + end + tail)
        print(f"updated {args.update_doc}", file=sys.stderr)
    return 1 if run.failed else 0


def count_lines(path):
    good = bad = 0
    with open(path, "rb") as f:
        for line in f:
            try:
                json.loads(line)
                good += 1
            except ValueError:
                bad += 1
    print(json.dumps({"lines": good, "bad": bad}))


def hyperfine(path):
    for result in json.load(open(path))["results"]:
        name = result.get("command_name") or result["command"]
        summary = {k: result[k] for k in ("median", "mean", "stddev", "min", "max", "user", "system")
                   if k in result}
        summary = {f"{k}_s": v for k, v in summary.items()}
        summary["runs"] = len(result.get("times", []))
        print(f"{name}\t{json.dumps(summary)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out")
    p.add_argument("--criterion")
    p.add_argument("--update-doc")
    p.add_argument("--count-lines")
    p.add_argument("--hyperfine")
    args = p.parse_args()
    if args.count_lines:
        return count_lines(args.count_lines)
    if args.hyperfine:
        return hyperfine(args.hyperfine)
    if not args.out:
        p.error("--out is required")
    return report(args)


if __name__ == "__main__":
    sys.exit(main() or 0)
