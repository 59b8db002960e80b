//! Kernel route writes in batches: many route messages in one `sendmsg`, one
//! acknowledgement per batch.
//!
//! Why: with one request per route (rtnetlink's handle) a large table costs two system
//! calls, two socket buffers and an acknowledgement per route on top of the kernel's own
//! work; in the install benchmark that overhead was about a third of the speaker's CPU
//! (`perf`: `netlink_sendmsg` and `netlink_recvmsg` around `inet_rtm_newroute`). The
//! kernel processes a netlink datagram's messages one after the other within the
//! `sendmsg` call, and it reports every failure whether or not an acknowledgement was
//! asked for, so only the last message of a batch asks for one: when its reply arrives,
//! every message of the batch has been answered. A message whose reply is an error
//! failed; the others succeeded.
//!
//! The socket is non-blocking: the replies are queued by the time `sendmsg` returns, so
//! reading them never waits; a reply missing anyway, or replies lost to a full receive
//! queue, fail the whole batch as a lost connection (the caller reconnects and re-reads
//! the kernel's table, so nothing is assumed).

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::RouteMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::sys as netlink_sys;
use rtnetlink::{packet_core as netlink_packet_core, packet_route as netlink_packet_route};

/// Messages per `sendmsg`. With `NETLINK_CAP_ACK` an error reply is 36 bytes, so even a
/// batch that fails entirely fits the default receive buffer many times over.
pub const BATCH: usize = 64;

/// What one message of a batch asks.
#[derive(Debug, Clone)]
pub enum Request {
    /// Create or replace a route (`ip route replace`).
    Replace(RouteMessage),
    /// Delete a route.
    Delete(RouteMessage),
}

/// The kernel's answer to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done.
    Ok,
    /// Refused with this errno (positive).
    Refused(i32),
}

/// A netlink socket for batched route writes, in the network namespace of the thread
/// that opened it.
#[derive(Debug)]
pub struct BatchSocket {
    socket: Socket,
    seq: u32,
    out: Vec<u8>,
    input: Vec<u8>,
}

impl BatchSocket {
    /// Opens the socket (in the calling thread's network namespace).
    pub fn open() -> io::Result<BatchSocket> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Error replies without a copy of the refused request.
        socket.set_cap_ack(true)?;
        socket.set_non_blocking(true)?;
        Ok(BatchSocket {
            socket,
            seq: 0,
            out: Vec::new(),
            input: vec![0; 64 * 1024],
        })
    }

    /// Sends `requests` (at most [`BATCH`]) in one datagram and returns the kernel's
    /// answer to each, in order. An error means the socket can no longer be trusted.
    pub fn send(&mut self, requests: Vec<Request>) -> io::Result<Vec<Reply>> {
        let count = requests.len();
        if count == 0 {
            return Ok(Vec::new());
        }
        self.out.clear();
        let first = self.seq.wrapping_add(1);
        for (i, request) in requests.into_iter().enumerate() {
            self.seq = self.seq.wrapping_add(1);
            let last = i + 1 == count;
            let ack = if last { NLM_F_ACK } else { 0 };
            let (payload, flags) = match request {
                Request::Replace(m) => (
                    RouteNetlinkMessage::NewRoute(m),
                    NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | ack,
                ),
                Request::Delete(m) => (RouteNetlinkMessage::DelRoute(m), NLM_F_REQUEST | ack),
            };
            let mut header = NetlinkHeader::default();
            header.flags = flags;
            header.sequence_number = self.seq;
            let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
            msg.finalize();
            let start = self.out.len();
            self.out.resize(start + msg.buffer_len(), 0);
            msg.serialize(&mut self.out[start..]);
        }
        let sent = self.socket.send(&self.out, 0)?;
        if sent != self.out.len() {
            return Err(io::Error::other("netlink datagram sent in part"));
        }
        let mut replies = vec![Reply::Ok; count];
        let last = self.seq;
        loop {
            let n = match self.socket.recv(&mut &mut self.input[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::other(
                        "the kernel did not answer every route message of a batch",
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut done = false;
            for (seq, code) in errors_in(&self.input[..n])? {
                let i = seq.wrapping_sub(first) as usize;
                if i >= count {
                    // A reply to an earlier batch (cannot happen: each batch is read to
                    // its end); ignored.
                    continue;
                }
                if let Some(code) = code {
                    replies[i] = Reply::Refused(code);
                }
                done |= seq == last;
            }
            if done {
                return Ok(replies);
            }
        }
    }
}

/// The (sequence number, errno) of every error/acknowledgement message in one datagram
/// (`None`: an acknowledgement).
fn errors_in(mut buf: &[u8]) -> io::Result<Vec<(u32, Option<i32>)>> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return Err(io::Error::other("malformed netlink reply"));
        }
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len])
            .map_err(|e| io::Error::other(format!("netlink reply: {e}")))?;
        if let NetlinkPayload::Error(e) = msg.payload {
            out.push((msg.header.sequence_number, e.code.map(|c| c.get().abs())));
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        buf = &buf[next.min(buf.len())..];
    }
    Ok(out)
}
