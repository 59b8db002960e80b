#!/usr/bin/env python3
"""Timestamps of the BGP messages a sender puts on the wire, seen at the receiver.

Run inside the receiver's network namespace:

    ip netns exec NS python3 wire_capture.py DEV SENDER_ADDR

It captures the sender-to-receiver direction of TCP connections to port 179 on DEV
(AF_PACKET, kernel receive timestamps), reassembles each connection's byte stream, splits
it into BGP messages and prints one JSON line per event, with `t` on the monotonic clock
(the same clock as Python's `time.monotonic()` in the benchmark):

    {"t": ..., "conn": PORT, "kind": "keepalive"}            first KEEPALIVE of a connection
    {"t": ..., "conn": PORT, "kind": "update", "held": K}    after each UPDATE: how many
                                                             IPv4 prefixes the sender has
                                                             announced and not withdrawn

The first KEEPALIVE is the moment the receiver's session becomes Established (RFC 4271:
OpenConfirm + KEEPALIVE). This tells what the sender itself contributes to the benchmark
(when its last route arrives), independent of how fast the receiver processes it.
"""

import json
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RCVBUFFORCE = 33


class Stream:
    """One TCP connection's sender-to-receiver bytes, in order, cut into BGP messages."""

    def __init__(self, isn):
        self.next_seq = (isn + 1) & 0xFFFFFFFF
        self.buf = bytearray()
        self.early = {}  # seq -> payload received ahead of a gap
        self.held = set()
        self.saw_keepalive = False

    def segment(self, seq, payload):
        # Offset of this segment relative to the next byte we need (mod 2^32).
        off = (seq - self.next_seq) & 0xFFFFFFFF
        if off >= 0x80000000:  # starts before next_seq: a retransmission, keep the new tail
            skip = (self.next_seq - seq) & 0xFFFFFFFF
            if skip >= len(payload):
                return
            payload, seq = payload[skip:], self.next_seq
            off = 0
        if off > 0:
            self.early[seq] = payload
            return
        self.buf += payload
        self.next_seq = (self.next_seq + len(payload)) & 0xFFFFFFFF
        while self.next_seq in self.early:
            p = self.early.pop(self.next_seq)
            self.buf += p
            self.next_seq = (self.next_seq + len(p)) & 0xFFFFFFFF

    def messages(self):
        """Complete messages now in the buffer: yields (type, body)."""
        pos = 0
        while len(self.buf) - pos >= 19:
            length = struct.unpack_from("!H", self.buf, pos + 16)[0]
            if length < 19 or len(self.buf) - pos < length:
                break
            yield self.buf[pos + 18], bytes(self.buf[pos + 19:pos + length])
            pos += length
        del self.buf[:pos]


def prefixes(data):
    """IPv4 prefixes in an NLRI or withdrawn-routes field, as (length, bytes) pairs."""
    out, i = [], 0
    while i < len(data):
        plen = data[i]
        n = (plen + 7) // 8
        out.append((plen, data[i + 1:i + 1 + n]))
        i += 1 + n
    return out


def update_change(body, held):
    wlen = struct.unpack_from("!H", body, 0)[0]
    for p in prefixes(body[2:2 + wlen]):
        held.discard(p)
    alen = struct.unpack_from("!H", body, 2 + wlen)[0]
    for p in prefixes(body[4 + wlen + alen:]):
        held.add(p)


def main():
    dev, sender = sys.argv[1], socket.inet_aton(sys.argv[2])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((dev, 0))
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    streams = {}
    print(json.dumps({"kind": "ready"}), flush=True)
    while True:
        frame, anc, _, addr = s.recvmsg(1 << 17, 64)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        t = time.monotonic()
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                # Kernel timestamps are CLOCK_REALTIME, the benchmark works on
                # CLOCK_MONOTONIC: take the packet's age now, so a clock being slewed
                # during the run cannot shift the result.
                sec, nsec = struct.unpack("qq", data[:16])
                t -= time.time() - (sec + nsec / 1e9)
        if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
            continue
        if frame[26:30] != sender:
            continue
        ihl = (frame[14] & 0x0F) * 4
        tcp = 14 + ihl
        sport, dport, seq = struct.unpack_from("!HHI", frame, tcp)
        if dport != 179:
            continue
        flags = frame[tcp + 13]
        total = struct.unpack_from("!H", frame, 16)[0]
        end = 14 + total if total else len(frame)  # total is 0 for some GSO frames
        payload = frame[tcp + (frame[tcp + 12] >> 4) * 4:end]
        if flags & 0x02:  # SYN: a new connection from this port
            streams[sport] = Stream(seq)
            continue
        st = streams.get(sport)
        if st is None or not payload:
            continue
        st.segment(seq, payload)
        for kind, body in st.messages():
            if kind == 4 and not st.saw_keepalive:
                st.saw_keepalive = True
                print(json.dumps({"t": t, "conn": sport, "kind": "keepalive"}), flush=True)
            elif kind == 2:
                update_change(body, st.held)
                print(json.dumps({"t": t, "conn": sport, "kind": "update",
                                  "held": len(st.held)}), flush=True)


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
