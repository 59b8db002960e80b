#!/usr/bin/env python3
"""Benchmark: ferrolb-bgp vs BIRD vs gobgpd as the *announcing* side, same run.

Topology (network namespaces, made and removed here):

    tx (sender, 10.99.0.2, AS 64522) ---veth--- rx (receiving gobgpd, 10.99.0.1, AS 64512)

For each sender and each N, several runs: the sender announces N /32s; we poll the
receiving gobgpd (`gobgp -j neighbor`) and record the time from the session becoming
Established until it has accepted all N routes, then the time from the sender's
withdrawal until it holds none, and the sender's peak RSS (VmHWM). Medians are printed
with ratios to each reference.

Usage (root): bgp/bench/run.sh [--sizes 1000,10000,100000] [--runs 3]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

RX_ADDR, TX_ADDR = "10.99.0.1", "10.99.0.2"
RX_AS, TX_AS = 64512, 64522
BASE = (10 << 24)  # 10.0.0.0


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


class Topology:
    def __init__(self):
        pid = os.getpid()
        self.rx, self.tx = f"flbb-{pid}-rx", f"flbb-{pid}-tx"
        self.va, self.vb = f"fb{pid}a"[:15], f"fb{pid}b"[:15]
        self.dir = tempfile.mkdtemp(prefix="flb-bench-")
        self.procs = []

    def __enter__(self):
        for ns in (self.rx, self.tx):
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", self.va, "netns", self.rx, "type", "veth",
           "peer", "name", self.vb, "netns", self.tx)
        for ns, dev, addr in ((self.rx, self.va, RX_ADDR), (self.tx, self.vb, TX_ADDR)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for ns in (self.rx, self.tx):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def spawn(self, ns, args, log, **kw):
        f = open(os.path.join(self.dir, log), "w")
        p = subprocess.Popen(["ip", "netns", "exec", ns] + args, stdout=kw.pop("stdout", f),
                             stderr=f, **kw)
        self.procs.append(p)
        return p


class Gobgpd:
    """A gobgpd with its API on a unix socket (the CLI then needs no netns exec)."""

    def __init__(self, topo, ns, name, asn, router_id, neighbors=()):
        self.sock = os.path.join(topo.dir, f"{name}.sock")
        conf = os.path.join(topo.dir, f"{name}.toml")
        with open(conf, "w") as f:
            f.write(f'[global.config]\n  as = {asn}\n  router-id = "{router_id}"\n')
            for addr, peer_as, passive in neighbors:
                f.write(f'\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "{addr}"\n'
                        f'    peer-as = {peer_as}\n  [neighbors.transport.config]\n'
                        f'    passive-mode = {"true" if passive else "false"}\n')
        self.proc = topo.spawn(ns, ["gobgpd", "-f", conf, "--api-hosts", f"unix://{self.sock}",
                                    "-l", "warn"], f"{name}.log")
        deadline = time.time() + 10
        while time.time() < deadline:
            if sh("gobgp", "--target", f"unix://{self.sock}", "global", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"gobgpd {name} did not start")

    def cli(self, *args, check=True):
        return sh("gobgp", "--target", f"unix://{self.sock}", *args, check=check).stdout

    def neighbor(self, addr):
        """(established, accepted) for one neighbour."""
        out = self.cli("-j", "neighbor", addr, check=False)
        try:
            n = json.loads(out)
        except json.JSONDecodeError:
            return False, 0
        state = n.get("state", {})
        est = state.get("session_state") in (6, "established", "ESTABLISHED")
        accepted = 0
        for afi in n.get("afi_safis", []) or []:
            accepted += int((afi.get("state") or {}).get("accepted", 0) or 0)
        return est, accepted


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_secs(pid):
    """User + system CPU seconds a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def wait_until(pred, timeout, interval=None):
    """Poll `pred` until true; returns the time it first held. Polls back to back for
    the first 0.3 s (resolution of one `gobgp` call, ~10-20 ms), then every 50 ms so the
    polling itself does not steal the 2-core machine from the daemons being measured."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        pause = interval if interval is not None else (0 if time.monotonic() - start < 0.3 else 0.05)
        if pause:
            time.sleep(pause)
    return None


def measure(rx, n, timeout=120):
    """Poll the receiver: returns (t_established, t_all) in monotonic seconds."""
    t_est = wait_until(lambda: rx.neighbor(TX_ADDR)[0], timeout)
    if t_est is None:
        raise RuntimeError("sender never became Established")
    t_all = wait_until(lambda: rx.neighbor(TX_ADDR)[1] >= n, timeout)
    if t_all is None:
        raise RuntimeError(f"receiver never got {n} routes (has {rx.neighbor(TX_ADDR)[1]})")
    return t_est, t_all


def wait_withdrawn(rx, timeout=120):
    t = wait_until(lambda: rx.neighbor(TX_ADDR)[1] == 0, timeout)
    if t is None:
        raise RuntimeError("routes were not withdrawn")
    return t


def wait_receiver_clean(rx):
    wait_until(lambda: rx.neighbor(TX_ADDR) == (False, 0), 60, 0.05)


# --- senders -----------------------------------------------------------------------

def run_ferrolb(topo, rx, n, binary):
    args = [binary, "--peer", RX_ADDR, "--peer-as", str(RX_AS), "--local-as", str(TX_AS),
            "--router-id", TX_ADDR, "--prefixes", str(n), "--base", "10.0.0.0",
            "--withdraw-on-signal", "--hold-secs", "600"]
    p = topo.spawn(topo.tx, args, "ferrolb.log", stdout=subprocess.PIPE, text=True)
    t_est, t_all = measure(rx, n)
    t_wd = None
    for line in p.stdout:
        if json.loads(line)["event"] == "end_of_rib_sent":
            t_wd = time.monotonic()
            p.send_signal(signal.SIGUSR1)  # withdraw everything
            break
    if t_wd is None:
        raise RuntimeError("ferrolb-bgp-bench exited early; see ferrolb.log")
    t_gone = wait_withdrawn(rx)
    # `ip netns exec` execs the program, so this pid is the bench's own.
    peak = vm_hwm_kib(p.pid)
    p.send_signal(signal.SIGTERM)
    p.wait()
    return t_all - t_est, t_gone - t_wd, peak


def run_bird(topo, rx, n):
    conf = os.path.join(topo.dir, "bird.conf")
    with open(conf, "w") as f:
        f.write(f"router id {TX_ADDR};\nprotocol device {{}}\nprotocol static st {{\n  ipv4;\n")
        for i in range(n):
            a = BASE + i
            f.write(f"  route {a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/32 blackhole;\n")
        f.write("}\n")
        f.write(f"protocol bgp to_rx {{\n  local {TX_ADDR} as {TX_AS};\n  neighbor {RX_ADDR} as {RX_AS};\n"
                f"  connect delay time 1;\n  ipv4 {{ import none; export all; next hop self; }};\n}}\n")
    sock = os.path.join(topo.dir, "bird.ctl")
    p = topo.spawn(topo.tx, ["bird", "-f", "-c", conf, "-s", sock], "bird.log")
    t_est, t_all = measure(rx, n)
    t_wd = time.monotonic()
    sh("birdc", "-s", sock, "disable", "st")
    t_gone = wait_withdrawn(rx)
    peak = vm_hwm_kib(p.pid)
    p.send_signal(signal.SIGTERM)
    p.wait()
    return t_all - t_est, t_gone - t_wd, peak


def write_mrt(path, n):
    """A TABLE_DUMP_V2 file with N /32s from 10.0.0.0 (one peer, empty AS_PATH)."""
    def rec(subtype, body):
        return struct.pack("!IHHI", int(time.time()), 13, subtype, len(body)) + body

    with open(path, "wb") as f:
        peer = struct.pack("!B4s4sI", 0x02, bytes([10, 99, 0, 2]), bytes([10, 99, 0, 2]), TX_AS)
        f.write(rec(1, bytes([10, 99, 0, 2]) + struct.pack("!H", 0) + struct.pack("!H", 1) + peer))
        attrs = (bytes([0x40, 1, 1, 0])            # ORIGIN IGP
                 + bytes([0x40, 2, 0])            # AS_PATH empty
                 + bytes([0x40, 3, 4, 10, 99, 0, 2]))  # NEXT_HOP
        for i in range(n):
            entry = struct.pack("!HIH", 0, int(time.time()), len(attrs)) + attrs
            body = struct.pack("!IB", i, 32) + struct.pack("!I", BASE + i) + struct.pack("!H", 1) + entry
            f.write(rec(2, body))


def run_gobgpd(topo, rx, n):
    tx = Gobgpd(topo, topo.tx, "gobgp-tx", TX_AS, TX_ADDR)
    mrt = os.path.join(topo.dir, f"routes-{n}.mrt")
    if not os.path.exists(mrt):
        write_mrt(mrt, n)
    tx.cli("mrt", "inject", "global", mrt)

    def count():
        out = tx.cli("-j", "global", "rib", "summary", "-a", "ipv4", check=False)
        try:
            return int(json.loads(out).get("num_destination", 0))
        except (json.JSONDecodeError, AttributeError, ValueError):
            return 0
    have = count()
    if have < n:  # gobgp 3.10's inject drops the tail: add what is missing one by one
        present = set()
        for line in tx.cli("global", "rib", "-a", "ipv4").splitlines():
            parts = line.split()
            for w in parts:
                if w.startswith("10.") and w.endswith("/32"):
                    present.add(w)
                    break
        for i in range(n):
            a = BASE + i
            pfx = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/32"
            if pfx not in present:
                tx.cli("global", "rib", "add", "-a", "ipv4", pfx, "nexthop", TX_ADDR)
    if count() != n:
        raise RuntimeError(f"gobgpd sender has {count()} routes, wanted {n}")
    tx.cli("neighbor", "add", RX_ADDR, "as", str(RX_AS))
    t_est, t_all = measure(rx, n)
    t_wd = time.monotonic()
    tx.cli("global", "rib", "del", "all", "-a", "ipv4")
    t_gone = wait_withdrawn(rx)
    peak = vm_hwm_kib(tx.proc.pid)
    tx.proc.send_signal(signal.SIGTERM)
    tx.proc.wait()
    return t_all - t_est, t_gone - t_wd, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--senders", default="ferrolb,gobgpd,bird")
    ap.add_argument("--binary", default="target/release/ferrolb-bgp-bench")
    args = ap.parse_args()
    # SIGTERM (e.g. a timeout) must still tear the namespaces down: turn it into SystemExit
    # so the Topology context manager's __exit__ runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in args.sizes.split(",")]
    senders = args.senders.split(",")
    binary = os.path.abspath(args.binary)
    results = {}
    with Topology() as topo:
        rx = Gobgpd(topo, topo.rx, "gobgp-rx", RX_AS, RX_ADDR, [(TX_ADDR, TX_AS, True)])
        for n in sizes:
            for r in range(args.runs):
                for s in senders:
                    wait_receiver_clean(rx)
                    fn = {"ferrolb": lambda: run_ferrolb(topo, rx, n, binary),
                          "bird": lambda: run_bird(topo, rx, n),
                          "gobgpd": lambda: run_gobgpd(topo, rx, n)}[s]
                    cpu0 = cpu_secs(rx.proc.pid)
                    add, wd, rss = fn()
                    cpu = cpu_secs(rx.proc.pid) - cpu0
                    results.setdefault((s, n), []).append((add, wd, rss, cpu))
                    print(f"# {s:8} N={n:<7} run {r + 1}: announce {add:.3f} s, "
                          f"withdraw {wd:.3f} s, peak RSS {rss / 1024:.1f} MiB, "
                          f"receiver CPU {cpu:.2f} s", flush=True)

    def med(s, n, i):
        v = results.get((s, n))
        return statistics.median(x[i] for x in v) if v else float("nan")

    print()
    print(f"Medians of {args.runs} runs; receiver gobgpd 3.10; times from Established until the "
          "receiver holds all N routes (announce) and from the withdrawal until it holds none.")
    print()
    print("Receiver CPU: CPU seconds the receiving gobgpd used during the whole run (both "
          "phases); it does not depend on how busy the shared machine was.")
    print()
    print("| sender | N | announce s | vs gobgpd | vs BIRD | withdraw s | vs gobgpd | vs BIRD "
          "| sender peak RSS MiB | receiver CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def ratio(v, ref, n, i):
        return f"{v / med(ref, n, i):.2f}x" if (ref, n) in results else "-"
    for n in sizes:
        for s in senders:
            a, w, m, c = med(s, n, 0), med(s, n, 1), med(s, n, 2) / 1024, med(s, n, 3)
            print(f"| {s} | {n} | {a:.3f} | {ratio(a, 'gobgpd', n, 0)} | {ratio(a, 'bird', n, 0)} "
                  f"| {w:.3f} | {ratio(w, 'gobgpd', n, 1)} | {ratio(w, 'bird', n, 1)} "
                  f"| {m:.1f} | {c:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
