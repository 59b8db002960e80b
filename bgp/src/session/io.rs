//! Per-connection reader and writer tasks.
//!
//! The peer task never blocks on a socket: a frozen peer with a full TCP window must
//! not stop our hold timer. The reader frames messages with [`message_length`] and
//! hands them over whole through a bounded queue ([`IO_QUEUE`] messages): when the peer
//! task falls behind, the reader waits, stops reading the socket, and TCP flow control
//! slows the peer down, so what a peer sends never piles up in our memory. The writer
//! drains a queue and coalesces queued buffers into large writes (the initial table of
//! 100k routes goes out in a few `write_all`s).

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::fsm::ConnId;
use crate::wire::{DecodeError, message_length};

/// How long a closing connection may take to flush its last writes (e.g. a Cease).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Messages (at most 4096 bytes each) queued between a reader and its peer task. The
/// queued frames share the reader's 64 KB buffers, so 16 keep about one buffer alive
/// (64 kept ~300 KB per session), and the peer task is never short of input.
pub const IO_QUEUE: usize = 16;

/// Bytes gathered into one `write_all` before it is issued.
const WRITE_COALESCE: usize = 256 * 1024;

/// What the reader and connect tasks report to the peer task.
#[derive(Debug)]
pub enum IoEvent {
    /// An outgoing connect attempt finished.
    Connected {
        /// Attempt number (stale attempts are ignored).
        attempt: u64,
        /// The stream, or why it failed.
        result: io::Result<tokio::net::TcpStream>,
    },
    /// One complete message.
    Frame {
        /// Connection.
        conn: ConnId,
        /// Connection generation.
        generation: u64,
        /// The bytes, header included.
        frame: Bytes,
    },
    /// The byte stream is not BGP (bad marker, length or type).
    Framing {
        /// Connection.
        conn: ConnId,
        /// Connection generation.
        generation: u64,
        /// What to tell the peer.
        error: DecodeError,
    },
    /// Everything queued for a ROUTE-REFRESH resend was written (and the minimum
    /// interval between resends has passed).
    RefreshDone {
        /// Connection generation of the session that resent.
        generation: u64,
        /// The family resent.
        family: crate::wire::AddressFamily,
    },
    /// End of stream or socket error.
    Closed {
        /// Connection.
        conn: ConnId,
        /// Connection generation.
        generation: u64,
        /// The error, `None` on a clean end of stream.
        error: Option<io::Error>,
    },
}

/// An item for the writer.
#[derive(Debug)]
pub enum WriteItem {
    /// Bytes to write (one or more encoded messages).
    Data(Vec<u8>),
    /// Signalled once everything queued before it has been written.
    Notify(oneshot::Sender<()>),
}

/// Read frames until the stream ends or stops being BGP.
pub async fn read_loop(
    mut reader: OwnedReadHalf,
    conn: ConnId,
    generation: u64,
    tx: mpsc::Sender<IoEvent>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        loop {
            match message_length(&buf) {
                Ok(Some(len)) if buf.len() >= len => {
                    let frame = buf.split_to(len).freeze();
                    if tx
                        .send(IoEvent::Frame {
                            conn,
                            generation,
                            frame,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => break,
                Err(error) => {
                    let _ = tx
                        .send(IoEvent::Framing {
                            conn,
                            generation,
                            error,
                        })
                        .await;
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) => {
                let closed = IoEvent::Closed {
                    conn,
                    generation,
                    error: None,
                };
                let _ = tx.send(closed).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let closed = IoEvent::Closed {
                    conn,
                    generation,
                    error: Some(e),
                };
                let _ = tx.send(closed).await;
                return;
            }
        }
    }
}

/// Write queued items until the queue is closed, then shut the socket down (FIN).
pub async fn write_loop(mut writer: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<WriteItem>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut notify: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(item) = rx.recv().await {
        let mut next = Some(item);
        // Gather everything already queued (up to the coalescing limit) into one write.
        while let Some(item) = next.take() {
            match item {
                WriteItem::Data(d) if pending.is_empty() => pending = d,
                WriteItem::Data(d) => pending.extend_from_slice(&d),
                WriteItem::Notify(n) => notify.push(n),
            }
            if pending.len() < WRITE_COALESCE {
                next = rx.try_recv().ok();
            }
        }
        if !pending.is_empty() {
            if writer.write_all(&pending).await.is_err() {
                return;
            }
            pending.clear();
            if pending.capacity() > 4 * WRITE_COALESCE {
                pending = Vec::new();
            }
        }
        for n in notify.drain(..) {
            let _ = n.send(());
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}

/// Wait for a closing writer to flush, at most [`FLUSH_TIMEOUT`], then stop it.
pub fn reap(mut writer: JoinHandle<()>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::time::timeout(FLUSH_TIMEOUT, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    })
}
