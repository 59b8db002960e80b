//! UDP sockets for BFD (RFC 5881, 5883): the shared receivers on ports 3784 and 4784 that
//! report each packet's TTL / hop limit, and the per-session senders bound to a source
//! port in 49152-65535 with TTL 255.

use std::io;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, SockaddrStorage, sockopt};
use socket2::{Domain, Protocol, Socket, Type};

/// Destination port of single-hop Control packets (RFC 5881).
pub const SINGLE_HOP_PORT: u16 = 3784;
/// Destination port of multihop Control packets (RFC 5883).
pub const MULTIHOP_PORT: u16 = 4784;
/// The source port range RFC 5881 section 4 requires.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// TTL / hop limit of every packet we send (RFC 5881 section 5, RFC 5883 section 5).
pub const TTL: u32 = 255;

/// Largest datagram read in full; anything longer is not a BFD Control packet we accept.
pub const RECV_BUF: usize = 128;

fn to_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// A UDP socket of `ip`'s family; IPv6 sockets are IPv6-only.
fn udp_socket(ip: IpAddr) -> io::Result<Socket> {
    let domain = if ip.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if ip.is_ipv6() {
        s.set_only_v6(true)?;
    }
    Ok(s)
}

/// A receiving socket on `addr` (IPv6 sockets are IPv6-only) that reports the TTL or hop
/// limit of each datagram. Non-blocking.
pub fn receiver(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = udp_socket(addr.ip())?;
    if addr.is_ipv6() {
        socket::setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).map_err(to_io)?;
    } else {
        socket::setsockopt(&s, sockopt::Ipv4RecvTtl, &true).map_err(to_io)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// One received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Datagram {
    /// Sender (IPv4-mapped addresses made canonical).
    pub from: SocketAddr,
    /// Bytes received (at most [`RECV_BUF`]).
    pub len: usize,
    /// The datagram was longer than [`RECV_BUF`].
    pub truncated: bool,
    /// Its TTL / hop limit, when the kernel reported one.
    pub ttl: Option<u8>,
}

/// Read one datagram into `buf` without blocking (`WouldBlock` when none is queued).
pub fn recv(sock: &impl AsRawFd, buf: &mut [u8; RECV_BUF]) -> io::Result<Datagram> {
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(to_io)?;
    let mut ttl = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                    ttl = u8::try_from(t).ok();
                }
                _ => {}
            }
        }
    }
    let from = msg
        .address
        .as_ref()
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::new(IpAddr::V4(v4.ip()), v4.port()))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::new(IpAddr::V6(v6.ip()), v6.port()))
                })
        })
        .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without address"))?;
    Ok(Datagram {
        from,
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        ttl,
    })
}

/// A sending socket for one session towards `peer`: bound to `local` (or the unspecified
/// address of the peer's family) and a free port in 49152-65535 (tried in a random order),
/// TTL / hop limit 255, a minimal receive buffer (nothing is read from it). Non-blocking.
pub fn sender(peer: IpAddr, local: Option<IpAddr>, seed: u64) -> io::Result<UdpSocket> {
    let ip = local.unwrap_or(match peer {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    if ip.is_ipv4() != peer.is_ipv4() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "source address and peer are of different families",
        ));
    }
    let s = udp_socket(ip)?;
    if ip.is_ipv6() {
        s.set_unicast_hops_v6(TTL)?;
    } else {
        s.set_ttl_v4(TTL)?;
    }
    let _ = s.set_recv_buffer_size(1);
    s.set_nonblocking(true)?;
    let (start, end) = (*SOURCE_PORTS.start(), *SOURCE_PORTS.end());
    let span = u32::from(end - start) + 1;
    let first = (seed % u64::from(span)) as u32;
    let mut last_err = None;
    for i in 0..span {
        let port = start + ((first + i) % span) as u16;
        match s.bind(&SocketAddr::new(ip, port).into()) {
            Ok(()) => return Ok(s.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_uses_the_rfc_port_range_and_ttl_255() {
        let rx = receiver("127.0.0.1:0".parse().unwrap()).expect("receiver");
        let dst = rx.local_addr().unwrap();
        let tx = sender(dst.ip(), Some(dst.ip()), 7).expect("sender");
        let port = tx.local_addr().unwrap().port();
        assert!(SOURCE_PORTS.contains(&port), "{port}");
        tx.send_to(b"hello", dst).expect("send");
        let mut buf = [0u8; RECV_BUF];
        let d = loop {
            match recv(&rx, &mut buf) {
                Ok(d) => break d,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(d.ttl, Some(255));
        assert_eq!(d.from.port(), port);
        assert_eq!(&buf[..d.len], b"hello");
        assert!(!d.truncated);
    }
}
