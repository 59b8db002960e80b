//! Socket set-up: TCP MD5 signatures (RFC 2385), TTL, source binding, the listener.

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Longest MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// Linux `struct tcp_md5sig` (include/uapi/linux/tcp.h). Not in the libc crate.
#[repr(C)]
struct TcpMd5Sig {
    tcpm_addr: libc::sockaddr_storage,
    tcpm_flags: u8,
    tcpm_prefixlen: u8,
    tcpm_keylen: u16,
    tcpm_ifindex: libc::c_int,
    tcpm_key: [u8; MD5_MAX_KEY_LEN],
}

/// Install (or with `None`, remove) the MD5 key for `peer` on a socket. On a
/// listening socket this is per peer; accepted connections inherit it.
pub fn set_md5<S: AsRawFd>(sock: &S, peer: IpAddr, key: Option<&str>) -> io::Result<()> {
    let key = key.unwrap_or("").as_bytes();
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "MD5 key longer than 80 bytes",
        ));
    }
    // SAFETY: all-zero bytes are a valid value of this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    let addr = socket2::SockAddr::from(SocketAddr::new(peer, 0));
    // SAFETY: `addr.len()` bytes are initialised and fit in a sockaddr_storage.
    unsafe {
        std::ptr::copy_nonoverlapping(
            addr.as_ptr().cast::<u8>(),
            (&raw mut sig.tcpm_addr).cast::<u8>(),
            addr.len() as usize,
        );
    }
    sig.tcpm_keylen = key.len() as u16;
    sig.tcpm_key[..key.len()].copy_from_slice(key);
    // SAFETY: valid fd, pointer and length of a properly initialised struct.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast::<libc::c_void>(),
            mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Set the TTL / hop limit of outgoing packets.
pub fn set_ttl<S: AsRawFd + std::os::fd::AsFd>(sock: &S, v6: bool, ttl: u32) -> io::Result<()> {
    let s = SockRef::from(sock);
    if v6 {
        s.set_unicast_hops_v6(ttl)
    } else {
        s.set_ttl_v4(ttl)
    }
}

/// Fail with the OS error (typically EADDRNOTAVAIL) if `addr` is not a local address.
pub fn check_local_address(addr: IpAddr) -> io::Result<()> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    sock.bind(&SocketAddr::new(addr, 0).into())
}

/// What an outgoing connection needs.
#[derive(Debug, Clone)]
pub struct ConnectParams {
    /// Peer address and port.
    pub remote: SocketAddr,
    /// Source address.
    pub source: Option<IpAddr>,
    /// MD5 password.
    pub password: Option<String>,
    /// TTL.
    pub ttl: u32,
}

/// Open an outgoing BGP connection: MD5 and TTL are set before `connect`.
pub async fn connect(p: &ConnectParams) -> io::Result<TcpStream> {
    let v6 = p.remote.is_ipv6();
    let sock = if v6 {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    if let Some(pw) = &p.password {
        set_md5(&sock, p.remote.ip(), Some(pw))?;
    }
    set_ttl(&sock, v6, p.ttl)?;
    if let Some(src) = p.source {
        sock.bind(SocketAddr::new(src, 0))?;
    }
    let stream = sock.connect(p.remote).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Bind the shared listener. An IPv6 wildcard also accepts IPv4 (mapped addresses).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(false)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(128)?;
    sock.set_nonblocking(true)?;
    TcpListener::from_std(sock.into())
}
