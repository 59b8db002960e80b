#!/usr/bin/env python3
"""Benchmark: ferrolb-bgp vs BIRD vs gobgpd as the *announcing* side, same run.

Topology (network namespaces, made and removed here):

    tx (sender, 10.99.0.2, AS 64522) ---veth--- rx (receiving gobgpd, 10.99.0.1, AS 64512)

For each sender and each N, several runs: the sender announces N /32s and we record the
time from the session becoming Established at the receiving gobgpd until it holds all N
routes, then the time from the sender's withdrawal until it holds none, and the sender's
peak RSS (VmHWM). Medians are printed with ratios to each reference.

Two observers, neither of which loads the receiver noticeably:
- the receiving gobgpd's own count of accepted routes, polled over its gRPC API on one
  persistent channel (about 0.4 ms a call; the interval is 1 % of the time elapsed, 1-20
  ms). Polling with the `gobgp` CLI instead has a floor of one process start (10-20 ms),
  which is the whole transfer time at N = 1,000.
- a packet capture on the receiver's interface (wire_capture.py), which gives the moment
  the receiver became Established (the sender's first KEEPALIVE) and when the sender's
  last route reached the receiver ("wire" columns); the rest is the receiver's processing.

Usage (root): bgp/bench/run.sh [--sizes 1000,10000,100000] [--runs 15,9,3]
              [--senders ferrolb,gobgpd,bird]
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
import threading
import time

RX_ADDR, TX_ADDR = "10.99.0.1", "10.99.0.2"
RX_AS, TX_AS = 64512, 64522
BASE = (10 << 24)  # 10.0.0.0
# Shortest interval between two polls of the receiver. 1 ms made the receiver itself about
# 3 ms slower at N = 1,000 than 4 ms did (15 runs each; the ratios between senders were
# the same), so the default trades 4 ms of resolution for a less disturbed receiver.
POLL_MIN_S = float(os.environ.get("FLB_BENCH_POLL_MIN_MS", "4")) / 1000


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


def _varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def _field(b, number):
    """The values of field `number` of a protobuf message (all of them, for repeated)."""
    return (v for n, v in _fields(b) if n == number)


def _fields(b):
    """Top-level fields of a protobuf message: yields (number, value); value is an int
    for varints and bytes for length-delimited fields (fixed-width ones are skipped)."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wire_type = key >> 3, key & 7
        if wire_type == 0:
            v, i = _varint(b, i)
            yield num, v
        elif wire_type == 2:
            n, i = _varint(b, i)
            yield num, b[i:i + n]
            i += n
        elif wire_type in (1, 5):
            i += 8 if wire_type == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {wire_type}")


class ReceiverPoll:
    """The receiving gobgpd's view of the sender, over its gRPC API (ListPeer).

    One persistent channel: a call costs about 0.4 ms, against 10-20 ms for a `gobgp` CLI
    process, which was the whole transfer time at N = 1,000. The request and the two
    fields read are encoded by hand (gobgp 3.x api/gobgp.proto: ListPeerRequest.address
    = 1; ListPeerResponse.peer = 1; Peer.state = 5 -> PeerState.session_state = 13
    (6 = Established); Peer.afi_safis = 10 -> AfiSafi.state = 3 -> AfiSafiState.accepted
    = 4), so no generated stubs are needed. A `gobgp monitor` stream was tried instead:
    it costs the receiver a gRPC message per route, which doubled its time at 100k."""

    def __init__(self, rx):
        import grpc  # Debian: python3-grpcio (bgp/bench/run.sh installs it)
        self.channel = grpc.insecure_channel(f"unix://{rx.sock}")
        self.list_peer = self.channel.unary_stream("/apipb.GobgpApi/ListPeer")
        self.request = b"\x0a" + bytes([len(TX_ADDR)]) + TX_ADDR.encode()

    def state(self):
        """(established, accepted) for the sender."""
        est, accepted = False, 0
        for resp in self.list_peer(self.request, timeout=5):
            for peer in _field(resp, 1):
                est = est or any(v == 6 for st in _field(peer, 5) for v in _field(st, 13))
                accepted += sum(v for afi in _field(peer, 10) for st in _field(afi, 3)
                                for v in _field(st, 4))
        return est, accepted

    def wait(self, pred, since, what, timeout=120):
        """Poll until pred(accepted) holds; returns when it first did. The interval grows
        with the time elapsed since `since` (1 % of it, 1-20 ms), so the resolution stays
        within about 1 % while the polling costs the receiver little."""
        deadline = time.monotonic() + timeout
        while True:
            accepted = self.state()[1]
            # The state is from some moment during the call: taking the time after it
            # returns can only report late, never early.
            now = time.monotonic()
            if pred(accepted):
                return now
            if now > deadline:
                raise RuntimeError(f"{what} (receiver holds {accepted} routes)")
            time.sleep(min(max(POLL_MIN_S, (now - since) / 100), 0.02))

    def holds_all(self, n, since):
        return self.wait(lambda a: a >= n, since, f"receiver never got all {n} routes")

    def holds_none(self, since):
        return self.wait(lambda a: a == 0, since, "routes were not withdrawn")

    def clean(self):
        """Between runs: the previous sender's session must be gone before the next starts."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.state() != (False, 0):
            time.sleep(0.05)


class WireWatch:
    """When the sender's messages reach the receiver's interface (wire_capture.py).

    `keepalive`: the sender's first KEEPALIVE, i.e. the receiver becoming Established;
    `all`/`none`: the UPDATE after which the sender has put all N routes / none on the
    wire. The difference to ReceiverPoll's times is the receiver's own processing."""

    def __init__(self, topo, dev):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wire_capture.py")
        self.proc = topo.spawn(topo.rx, [sys.executable, script, dev, TX_ADDR], "capture.log",
                               stdout=subprocess.PIPE, text=True)
        if json.loads(self.proc.stdout.readline()).get("kind") != "ready":
            raise RuntimeError("wire capture did not start")
        self.cv = threading.Condition()
        self.target = None
        self.t = {}
        threading.Thread(target=self._lines, daemon=True).start()

    def _lines(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.cv:
                if self.target is None:
                    continue
                if ev["kind"] == "keepalive":
                    self.t.setdefault("keepalive", ev["t"])
                elif ev["held"] >= self.target:
                    self.t.setdefault("all", ev["t"])
                elif ev["held"] == 0 and "all" in self.t:
                    self.t.setdefault("none", ev["t"])
                self.cv.notify_all()

    def arm(self, n):
        with self.cv:
            self.target, self.t = n, {}

    def established(self, timeout=120):
        """When the sender's first KEEPALIVE arrived (the receiver became Established)."""
        with self.cv:
            if not self.cv.wait_for(lambda: "keepalive" in self.t, timeout):
                raise RuntimeError("sender never became Established")
            return self.t["keepalive"]

    def arrivals(self, timeout=10):
        """When the sender's last route and its last withdrawal reached the receiver."""
        with self.cv:
            if not self.cv.wait_for(lambda: "none" in self.t, timeout):
                raise RuntimeError(f"wire capture saw only {sorted(self.t)}")
            return self.t["all"], self.t["none"]


class Receiver:
    """Both observers of the receiving gobgpd for one run."""

    def __init__(self, poll, wire):
        self.poll, self.wire = poll, wire

    def arm(self, n):
        self.poll.clean()
        self.n = n
        self.wire.arm(n)

    def announced(self):
        """(t_established, t_holds_all)."""
        t_est = self.wire.established()
        return t_est, self.poll.holds_all(self.n, t_est)

    def withdrawn(self, since):
        return self.poll.holds_none(since)


# --- senders -----------------------------------------------------------------------

def run_ferrolb(topo, rx, n, binary):
    args = [binary, "--peer", RX_ADDR, "--peer-as", str(RX_AS), "--local-as", str(TX_AS),
            "--router-id", TX_ADDR, "--prefixes", str(n), "--base", "10.0.0.0",
            "--withdraw-on-signal", "--hold-secs", "600"]
    p = topo.spawn(topo.tx, args, "ferrolb.log", stdout=subprocess.PIPE, text=True)
    t_est, t_all = rx.announced()
    t_wd = None
    for line in p.stdout:
        if json.loads(line)["event"] == "end_of_rib_sent":
            t_wd = time.monotonic()
            p.send_signal(signal.SIGUSR1)  # withdraw everything
            break
    if t_wd is None:
        raise RuntimeError("ferrolb-bgp-bench exited early; see ferrolb.log")
    t_gone = rx.withdrawn(t_wd)
    # `ip netns exec` execs the program, so this pid is the bench's own.
    peak = vm_hwm_kib(p.pid)
    p.send_signal(signal.SIGTERM)
    p.wait()
    return {"est": t_est, "all": t_all, "wd": t_wd, "gone": t_gone, "rss": peak}


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
    t_est, t_all = rx.announced()
    t_wd = time.monotonic()
    sh("birdc", "-s", sock, "disable", "st")
    t_gone = rx.withdrawn(t_wd)
    peak = vm_hwm_kib(p.pid)
    p.send_signal(signal.SIGTERM)
    p.wait()
    return {"est": t_est, "all": t_all, "wd": t_wd, "gone": t_gone, "rss": peak}


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
    t_est, t_all = rx.announced()
    t_wd = time.monotonic()
    tx.cli("global", "rib", "del", "all", "-a", "ipv4")
    t_gone = rx.withdrawn(t_wd)
    peak = vm_hwm_kib(tx.proc.pid)
    tx.proc.send_signal(signal.SIGTERM)
    tx.proc.wait()
    return {"est": t_est, "all": t_all, "wd": t_wd, "gone": t_gone, "rss": peak}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", default="15,9,3",
                    help="runs per size: one number, or one per --sizes entry. At 1,000 "
                         "routes a run is 10-25 ms of mostly receiver work, so it takes "
                         "about 15 runs for the medians to settle")
    ap.add_argument("--senders", default="ferrolb,gobgpd,bird")
    ap.add_argument("--binary", default="target/release/ferrolb-bgp-bench")
    args = ap.parse_args()
    # SIGTERM (e.g. a timeout) must still tear the namespaces down: turn it into SystemExit
    # so the Topology context manager's __exit__ runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = [int(r) for r in args.runs.split(",")]
    if len(runs) == 1:
        runs = runs * len(sizes)
    if len(runs) < len(sizes):
        ap.error("--runs needs one number, or one per size")
    senders = args.senders.split(",")
    binary = os.path.abspath(args.binary)
    results = {}
    inconsistent = 0
    with Topology() as topo:
        gobgp_rx = Gobgpd(topo, topo.rx, "gobgp-rx", RX_AS, RX_ADDR, [(TX_ADDR, TX_AS, True)])
        wire = WireWatch(topo, topo.va)
        rx = Receiver(ReceiverPoll(gobgp_rx), wire)
        for n, n_runs in zip(sizes, runs):
            for r in range(n_runs):
                for s in senders:
                    rx.arm(n)
                    fn = {"ferrolb": lambda: run_ferrolb(topo, rx, n, binary),
                          "bird": lambda: run_bird(topo, rx, n),
                          "gobgpd": lambda: run_gobgpd(topo, rx, n)}[s]
                    cpu0 = cpu_secs(gobgp_rx.proc.pid)
                    t = fn()
                    cpu = cpu_secs(gobgp_rx.proc.pid) - cpu0
                    # t["est"] is the wire capture's KEEPALIVE (Receiver.announced).
                    wire_all, wire_none = wire.arrivals()
                    wire_add = wire_all - t["est"]
                    row = {"add": t["all"] - t["est"], "wd": t["gone"] - t["wd"],
                           "wire_add": wire_add, "wire_wd": wire_none - t["wd"],
                           "rss": t["rss"] / 1024, "cpu": cpu}
                    results.setdefault((s, n), []).append(row)
                    # The receiver cannot hold routes before they reached it: if it seems
                    # to, one of the two observers is wrong and the run says nothing.
                    if wire_add > row["add"] or row["wire_wd"] > row["wd"]:
                        inconsistent += 1
                        print(f"# WARNING: {s} N={n} run {r + 1}: receiver ahead of the wire",
                              flush=True)
                    print(f"# {s:8} N={n:<7} run {r + 1}: announce {row['add']:.4f} s "
                          f"(wire {wire_add:.4f}), withdraw {row['wd']:.4f} s "
                          f"(wire {row['wire_wd']:.4f}), peak RSS {row['rss']:.1f} MiB, "
                          f"receiver CPU {cpu:.2f} s", flush=True)

    def med(s, n, k):
        v = results.get((s, n))
        return statistics.median(x[k] for x in v) if v else float("nan")

    print()
    print(f"Medians of {', '.join(f'{r} runs at N={n}' for n, r in zip(sizes, runs))}; "
          "receiver gobgpd 3.10. announce: from the receiver "
          "becoming Established until it holds all N routes; withdraw: from the sender being "
          "told to withdraw until the receiver holds none (polled over gobgpd's gRPC API). "
          "wire: the same, until the sender's last UPDATE reaches the receiver's interface "
          "(packet capture); the rest is the receiver's own processing.")
    print()
    print("Receiver CPU: CPU seconds the receiving gobgpd used during the whole run (both "
          "phases); it does not depend on how busy the shared machine was.")
    print()
    print("| sender | N | announce s | vs gobgpd | vs BIRD | wire s | withdraw s | vs gobgpd "
          "| vs BIRD | wire s | sender peak RSS MiB | receiver CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def ratio(n, s, k, ref):
        return f"{med(s, n, k) / med(ref, n, k):.2f}x" if (ref, n) in results else "-"
    for n in sizes:
        for s in senders:
            print(f"| {s} | {n} | {med(s, n, 'add'):.4f} | {ratio(n, s, 'add', 'gobgpd')} "
                  f"| {ratio(n, s, 'add', 'bird')} | {med(s, n, 'wire_add'):.4f} "
                  f"| {med(s, n, 'wd'):.4f} | {ratio(n, s, 'wd', 'gobgpd')} "
                  f"| {ratio(n, s, 'wd', 'bird')} | {med(s, n, 'wire_wd'):.4f} "
                  f"| {med(s, n, 'rss'):.1f} | {med(s, n, 'cpu'):.2f} |")
    if inconsistent:
        print(f"{inconsistent} runs had the receiver ahead of the wire: do not trust this table")
        print()
    # Runs are interleaved (ferrolb, gobgpd, BIRD, then the next run), so run i of each
    # sender saw the same machine state: count how often ferrolb was the faster one.
    print()
    for n in sizes:
        mine = [x["add"] for x in results.get(("ferrolb", n), [])]
        for ref in senders:
            theirs = [x["add"] for x in results.get((ref, n), [])]
            if ref != "ferrolb" and mine and theirs:
                wins = sum(a < b for a, b in zip(mine, theirs))
                print(f"N={n}: ferrolb announced faster than {ref} in {wins} of "
                      f"{min(len(mine), len(theirs))} runs")


if __name__ == "__main__":
    sys.exit(main())
