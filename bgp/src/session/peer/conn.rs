//! The connections of a peer: the outgoing connect, installing a TCP stream (accepted
//! or connected) with its reader and writer tasks, sending on it, closing it, and what
//! the reader and the connect task report back.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::super::io::{IoEvent, WriteItem, read_loop, reap, write_loop};
use super::super::socket::{self, ConnectParams};
use super::{Conn, PeerTask};
use crate::fsm::{ConnId, Event};
use crate::wire::{Message, SessionContext, decode, encode};

impl PeerTask {
    pub(super) fn start_connect(&mut self) {
        if let Some((_, old)) = self.connect.take() {
            old.abort();
        }
        self.next_generation += 1;
        let attempt = self.next_generation;
        let params = ConnectParams {
            remote: SocketAddr::new(self.config.address, self.config.port),
            source: self.config.source_address,
            password: self.config.password.clone(),
            ttl: self.config.ttl(),
        };
        let tx = self.io_tx.clone();
        let task = tokio::spawn(async move {
            let result = socket::connect(&params).await;
            let _ = tx.send(IoEvent::Connected { attempt, result }).await;
        });
        self.connect = Some((attempt, task));
    }

    fn install_conn(&mut self, conn: ConnId, stream: TcpStream) -> bool {
        let local = match stream.local_addr() {
            Ok(a) => SocketAddr::new(a.ip().to_canonical(), a.port()),
            Err(e) => {
                warn!(peer = %self.peer(), error = %e, "cannot read local address of connection");
                return false;
            }
        };
        self.next_generation += 1;
        let generation = self.next_generation;
        let (read, write) = stream.into_split();
        let (wtx, wrx) = mpsc::unbounded_channel();
        let reader_task = tokio::spawn(read_loop(read, conn, generation, self.io_tx.clone()));
        let writer_task = tokio::spawn(write_loop(write, wrx));
        self.conns[conn.index()] = Some(Conn {
            generation,
            writer: wtx,
            writer_task,
            reader_task,
            local,
            ctx: SessionContext::default_for_open(),
        });
        true
    }

    pub(super) fn close_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns[conn.index()].take() {
            c.reader_task.abort();
            drop(c.writer);
            self.closing.push(reap(c.writer_task));
        } else if conn == ConnId::Outbound
            && let Some((_, task)) = self.connect.take()
        {
            task.abort();
        }
    }

    pub(super) fn send_bytes(&self, conn: ConnId, bytes: Vec<u8>) {
        if let Some(c) = &self.conns[conn.index()] {
            let _ = c.writer.send(WriteItem::Data(bytes));
        }
    }

    pub(super) fn send_message(&mut self, conn: ConnId, msg: &Message) {
        let Some(c) = &self.conns[conn.index()] else {
            return;
        };
        match encode(msg, &c.ctx) {
            Ok(bytes) => {
                if let Message::Notification(n) = msg {
                    warn!(peer = %self.peer(), code = n.code, subcode = n.subcode, "sending NOTIFICATION");
                }
                let _ = c.writer.send(WriteItem::Data(bytes));
            }
            Err(e) => warn!(peer = %self.peer(), error = %e, "cannot encode message"),
        }
    }

    pub(super) fn on_io(&mut self, ev: IoEvent) {
        match ev {
            IoEvent::Connected { attempt, result } => {
                if self.connect.as_ref().map(|(a, _)| *a) != Some(attempt) {
                    return; // abandoned attempt; dropping the stream closes it
                }
                self.connect = None;
                match result {
                    Ok(stream) => {
                        if self.install_conn(ConnId::Outbound, stream) {
                            self.feed(Event::TcpConnected(ConnId::Outbound));
                        } else {
                            self.feed(Event::TcpConnectFailed);
                        }
                    }
                    Err(e) => {
                        debug!(peer = %self.peer(), error = %e, "connect failed");
                        self.connect_error = Some(format!("connect: {e}"));
                        self.feed(Event::TcpConnectFailed);
                        // Only a ConnectionFailed action consumes it; never let it linger.
                        if let Some(text) = self.connect_error.take() {
                            self.with_status(|s| s.status.last_error = Some(text));
                        }
                    }
                }
            }
            IoEvent::Frame {
                conn,
                generation,
                frame,
            } => {
                let Some(c) = self.live(conn, generation) else {
                    return;
                };
                match decode(&frame, &c.ctx) {
                    Ok(decoded) => {
                        if let Some(a) = decoded.actions.first()
                            && let Some(count) = self.rfc7606_log.hit()
                        {
                            warn!(peer = %self.peer(), action = ?a, count, "UPDATE error handled (RFC 7606; one line per 10 s, with the count since the last)");
                        }
                        self.feed(Event::Message(conn, decoded.message));
                    }
                    Err(e) => {
                        warn!(peer = %self.peer(), error = %e, "malformed message from peer");
                        self.feed(Event::DecodeError(conn, e.notification));
                    }
                }
            }
            IoEvent::Framing {
                conn,
                generation,
                error,
            } => {
                if self.live(conn, generation).is_some() {
                    warn!(peer = %self.peer(), error = %error, "malformed message from peer");
                    self.feed(Event::DecodeError(conn, error.notification));
                }
            }
            IoEvent::RefreshDone { generation, family } => self.on_refresh_done(generation, family),
            IoEvent::Closed {
                conn,
                generation,
                error,
            } => {
                if self.live(conn, generation).is_some() {
                    debug!(peer = %self.peer(), ?error, "connection closed");
                    self.feed(Event::TcpClosed(conn));
                }
            }
        }
    }

    fn live(&self, conn: ConnId, generation: u64) -> Option<&Conn> {
        self.conns[conn.index()]
            .as_ref()
            .filter(|c| c.generation == generation)
    }

    pub(super) fn on_inbound(&mut self, stream: TcpStream) {
        if self.conns[ConnId::Inbound.index()].is_some() {
            debug!(peer = %self.peer(), "second inbound connection refused");
            return;
        }
        let v6 = stream.peer_addr().map(|a| a.is_ipv6()).unwrap_or(false);
        if let Err(e) = socket::set_ttl(&stream, v6, self.config.ttl()) {
            debug!(peer = %self.peer(), error = %e, "cannot set TTL on inbound connection");
        }
        let _ = stream.set_nodelay(true);
        if self.install_conn(ConnId::Inbound, stream) {
            self.feed(Event::TcpConnected(ConnId::Inbound));
        }
    }
}
