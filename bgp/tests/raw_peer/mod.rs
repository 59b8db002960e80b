//! A small raw-TCP BGP peer for hostile tests: it writes whatever bytes a test wants
//! (floods, malformed UPDATEs, far too many prefixes) and reads what comes back, with
//! nothing of our own codec in between, so a bug there cannot hide one in the speaker.
//!
//! Blocking std sockets; the OPEN it sends offers IPv4 unicast, route refresh and
//! 4-octet AS numbers, with hold time 0 (no keepalives needed either way, so a test
//! can stop reading without the session timing out).
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

pub const OPEN: u8 = 1;
pub const UPDATE: u8 = 2;
pub const NOTIFICATION: u8 = 3;
pub const KEEPALIVE: u8 = 4;
pub const ROUTE_REFRESH: u8 = 5;

/// A BGP message: 16-byte marker, length, type, body.
pub fn message(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    out.push(msg_type);
    out.extend_from_slice(body);
    out
}

/// OPEN with hold time 0 and the capabilities above.
pub fn open(asn: u32, id: Ipv4Addr) -> Vec<u8> {
    let my_as = u16::try_from(asn).unwrap_or(23456);
    let caps: Vec<u8> = [
        vec![1, 4, 0, 1, 0, 1], // multiprotocol IPv4 unicast
        vec![2, 0],             // route refresh
        {
            let mut c = vec![65, 4];
            c.extend_from_slice(&asn.to_be_bytes());
            c
        },
    ]
    .concat();
    let mut body = vec![4];
    body.extend_from_slice(&my_as.to_be_bytes());
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&id.octets());
    body.push((caps.len() + 2) as u8);
    body.push(2); // optional parameter: capabilities
    body.push(caps.len() as u8);
    body.extend_from_slice(&caps);
    message(OPEN, &body)
}

pub fn keepalive() -> Vec<u8> {
    message(KEEPALIVE, &[])
}

/// ROUTE-REFRESH for IPv4 unicast.
pub fn route_refresh() -> Vec<u8> {
    message(ROUTE_REFRESH, &[0, 1, 0, 1])
}

/// One path attribute.
pub fn attr(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, type_code, value.len() as u8];
    out.extend_from_slice(value);
    out
}

/// ORIGIN IGP, AS_PATH [asn] (4-octet), NEXT_HOP.
pub fn attrs(asn: u32, next_hop: Ipv4Addr) -> Vec<u8> {
    let mut path = vec![2, 1];
    path.extend_from_slice(&asn.to_be_bytes());
    [
        attr(0x40, 1, &[0]),
        attr(0x40, 2, &path),
        attr(0x40, 3, &next_hop.octets()),
    ]
    .concat()
}

/// Prefixes in NLRI encoding.
pub fn nlri(prefixes: &[Ipv4Net]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in prefixes {
        let len = p.prefix_len();
        out.push(len);
        out.extend_from_slice(&p.network().octets()[..usize::from(len).div_ceil(8)]);
    }
    out
}

/// UPDATE from raw parts (attributes already encoded).
pub fn update_raw(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    message(UPDATE, &body)
}

/// UPDATEs announcing `prefixes` via `next_hop`, as many per message as fit.
pub fn announce(asn: u32, next_hop: Ipv4Addr, prefixes: &[Ipv4Net]) -> Vec<Vec<u8>> {
    let a = attrs(asn, next_hop);
    let room = (4096 - 23 - a.len()) / 5;
    prefixes
        .chunks(room.max(1))
        .map(|c| update_raw(&[], &a, &nlri(c)))
        .collect()
}

/// UPDATE withdrawing `prefixes` (they must fit in one message).
pub fn withdraw(prefixes: &[Ipv4Net]) -> Vec<u8> {
    update_raw(&nlri(prefixes), &[], &[])
}

/// `n` /32s from `base` on.
pub fn host_routes(base: Ipv4Addr, n: u32) -> Vec<Ipv4Net> {
    (0..n)
        .map(|i| Ipv4Net::new(Ipv4Addr::from(u32::from(base) + i), 32).expect("/32"))
        .collect()
}

/// One session's TCP connection, after the OPEN exchange.
pub struct RawPeer {
    pub stream: TcpStream,
    /// The speaker's OPEN body.
    pub their_open: Vec<u8>,
}

impl RawPeer {
    /// Accepts the speaker's connection on `listener` (within `timeout`) and completes
    /// the OPEN / KEEPALIVE exchange.
    pub fn accept(
        listener: &TcpListener,
        asn: u32,
        id: Ipv4Addr,
        timeout: Duration,
    ) -> io::Result<RawPeer> {
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "no connection"));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut peer = RawPeer {
            stream,
            their_open: Vec::new(),
        };
        let (t, body) = peer.read_message()?;
        if t != OPEN {
            return Err(io::Error::other(format!("expected OPEN, got type {t}")));
        }
        peer.their_open = body;
        peer.send(&open(asn, id))?;
        peer.send(&keepalive())?;
        // Their KEEPALIVE ends the exchange; UPDATEs may follow right away.
        loop {
            let (t, body) = peer.read_message()?;
            match t {
                KEEPALIVE => return Ok(peer),
                NOTIFICATION => {
                    return Err(io::Error::other(format!("NOTIFICATION {body:?}")));
                }
                _ => {}
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends every message in order.
    pub fn send_all(&mut self, msgs: &[Vec<u8>]) -> io::Result<()> {
        for m in msgs {
            self.send(m)?;
        }
        Ok(())
    }

    /// Reads one whole message: (type, body).
    pub fn read_message(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut hdr = [0u8; 19];
        self.stream.read_exact(&mut hdr)?;
        let len = usize::from(u16::from_be_bytes([hdr[16], hdr[17]]));
        if len < 19 {
            return Err(io::Error::other(format!("bad length {len}")));
        }
        let mut body = vec![0u8; len - 19];
        self.stream.read_exact(&mut body)?;
        Ok((hdr[18], body))
    }

    /// Reads until a NOTIFICATION arrives (returns its body: code, subcode, data) or
    /// the connection ends or times out.
    pub fn read_until_notification(&mut self) -> io::Result<Vec<u8>> {
        loop {
            let (t, body) = self.read_message()?;
            if t == NOTIFICATION {
                return Ok(body);
            }
        }
    }
}

/// Peak and current resident set size of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}
