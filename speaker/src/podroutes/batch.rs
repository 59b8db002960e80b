//! The speaker's rtnetlink socket: route writes in batches (many route messages in one
//! `sendmsg`, one acknowledgement per batch) and the route and address dumps.
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
//!
//! Dumps work on the same non-blocking socket: the kernel fills the first part of a dump
//! in `sendmsg` and each further part inside the `recvmsg` that makes room for it, so the
//! next part is always there until `NLMSG_DONE`; a dump that runs dry before it is a lost
//! socket too. The caller reads one part at a time and lets other tasks run in between.

use std::io;

use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::message::RtMessage;

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
    /// The sequence number of a dump whose reader stopped before its end (its remaining
    /// parts are drained before the next request).
    unfinished_dump: Option<u32>,
}

/// What one read of a dump found.
#[derive(Debug, PartialEq, Eq)]
pub enum DumpPart {
    /// More parts follow.
    More,
    /// `NLMSG_DONE`: the dump is complete.
    Done,
    /// The kernel refused the dump with this errno (positive).
    Refused(i32),
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
            unfinished_dump: None,
        })
    }

    /// Appends one request to the outgoing datagram and returns its sequence number.
    fn push(&mut self, payload: RtMessage, flags: u16) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
        msg.finalize();
        let start = self.out.len();
        self.out.resize(start + msg.buffer_len(), 0);
        msg.serialize(&mut self.out[start..]);
        self.seq
    }

    /// Sends the outgoing datagram, after draining what an abandoned dump left.
    fn flush(&mut self) -> io::Result<()> {
        if self.unfinished_dump.take().is_some() {
            // Each read makes the kernel queue the next part, so this ends at the dump's
            // end (or at a reply nobody waits for any more).
            while self.recv()?.is_some() {}
        }
        let sent = self.socket.send(&self.out, 0)?;
        if sent != self.out.len() {
            return Err(io::Error::other("netlink datagram sent in part"));
        }
        Ok(())
    }

    /// One datagram into `self.input` (its length), `None` when nothing is queued.
    fn recv(&mut self) -> io::Result<Option<usize>> {
        loop {
            match self.socket.recv(&mut &mut self.input[..], 0) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Asks for a dump (`request`: `GetRoute` with an address family, or `GetAddress`);
    /// read it with [`BatchSocket::read_dump`]. Returns its sequence number.
    pub fn start_dump(&mut self, request: RtMessage) -> io::Result<u32> {
        self.out.clear();
        let seq = self.push(request, NLM_F_REQUEST | NLM_F_DUMP);
        self.flush()?;
        self.unfinished_dump = Some(seq);
        Ok(seq)
    }

    /// Reads the next part of dump `seq`, handing each of its messages to `f`. An error
    /// means the socket can no longer be trusted.
    pub fn read_dump(&mut self, seq: u32, mut f: impl FnMut(RtMessage)) -> io::Result<DumpPart> {
        let Some(n) = self.recv()? else {
            self.unfinished_dump = None;
            return Err(io::Error::other("the kernel's dump stopped before its end"));
        };
        let mut buf = &self.input[..n];
        let mut done = false;
        while let Some((msg, rest)) = next_message(buf)? {
            buf = rest;
            if msg.header.sequence_number != seq {
                continue;
            }
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => f(m),
                NetlinkPayload::Done(_) => done = true,
                NetlinkPayload::Error(e) => {
                    self.unfinished_dump = None;
                    return match e.code {
                        Some(code) => Ok(DumpPart::Refused(code.get().abs())),
                        None => Err(io::Error::other("dump acknowledged without a reply")),
                    };
                }
                NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
                _ => {}
            }
        }
        if done {
            self.unfinished_dump = None;
            Ok(DumpPart::Done)
        } else {
            Ok(DumpPart::More)
        }
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
            let ack = if i + 1 == count { NLM_F_ACK } else { 0 };
            let (payload, flags) = match request {
                Request::Replace(m) => (
                    RtMessage::NewRoute(m),
                    NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | ack,
                ),
                Request::Delete(m) => (RtMessage::DelRoute(m), NLM_F_REQUEST | ack),
            };
            self.push(payload, flags);
        }
        self.flush()?;
        let mut replies = vec![Reply::Ok; count];
        let last = self.seq;
        loop {
            let Some(n) = self.recv()? else {
                return Err(io::Error::other(
                    "the kernel did not answer every route message of a batch",
                ));
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

/// The first message of `buf` and what follows it; `None` at the end.
fn next_message(buf: &[u8]) -> io::Result<Option<(NetlinkMessage<RtMessage>, &[u8])>> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len < 16 || len > buf.len() {
        return Err(io::Error::other("malformed netlink reply"));
    }
    let msg = NetlinkMessage::<RtMessage>::deserialize(&buf[..len])
        .map_err(|e| io::Error::other(format!("netlink reply: {e}")))?;
    // Messages are 4-byte aligned.
    let next = (len + 3) & !3;
    Ok(Some((msg, &buf[next.min(buf.len())..])))
}

/// The (sequence number, errno) of every error/acknowledgement message in one datagram
/// (`None`: an acknowledgement).
fn errors_in(mut buf: &[u8]) -> io::Result<Vec<(u32, Option<i32>)>> {
    let mut out = Vec::new();
    while let Some((msg, rest)) = next_message(buf)? {
        buf = rest;
        if let NetlinkPayload::Error(e) = msg.payload {
            out.push((msg.header.sequence_number, e.code.map(|c| c.get().abs())));
        }
    }
    Ok(out)
}
