//! The demo workload's "pod": a tiny HTTP server that answers every request with its node
//! and pod name, so a client can see where a connection ended up. Also the matching tiny
//! HTTP client the demo and the tests use (one fresh TCP connection per request, so ECMP
//! hashing spreads requests). A connection that starts with `PING\n` instead of an HTTP
//! request is a long-lived one: every `PING\n` line gets the body back on the same
//! connection, for as long as the client keeps it open ([`ping`]).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The body a pod answers with.
pub fn body(node: &str, pod: &str) -> String {
    format!("node={node} pod={pod}\n")
}

/// Parses a body made by [`body`] into (node, pod).
pub fn parse_body(text: &str) -> Option<(String, String)> {
    let mut node = None;
    let mut pod = None;
    for part in text.split_whitespace() {
        if let Some(v) = part.strip_prefix("node=") {
            node = Some(v.to_string());
        } else if let Some(v) = part.strip_prefix("pod=") {
            pod = Some(v.to_string());
        }
    }
    Some((node?, pod?))
}

/// Serves forever on `listen`.
pub async fn serve(listen: SocketAddr, node: String, pod: String) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (port in use?)"))?;
    tracing::info!(%listen, node, pod, "http-echo listening");
    let reply = body(&node, &pod);
    loop {
        let (mut sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let reply = reply.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(512);
            let mut chunk = [0u8; 512];
            // Read the request head (bounded), then answer and close.
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n")
                    && !buf.starts_with(PING)
                    && buf.len() < 16 * 1024
                {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            if buf.starts_with(PING) {
                answer_pings(sock, buf, &reply).await;
                return;
            }
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
            if let Err(e) = sock.write_all(resp.as_bytes()).await {
                tracing::debug!(%peer, error = %e, "write failed");
            }
            let _ = sock.shutdown().await;
        });
    }
}

/// The line that asks a long-lived connection for one answer.
const PING: &[u8] = b"PING\n";

/// Answers every `PING\n` on `sock` with `reply` until the client closes.
async fn answer_pings(mut sock: TcpStream, mut buf: Vec<u8>, reply: &str) {
    let mut chunk = [0u8; 512];
    loop {
        while buf.starts_with(PING) {
            buf.drain(..PING.len());
            if sock.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
        if buf.len() >= PING.len() {
            return; // not a ping: the client speaks something else
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A long-lived connection to an echo server: one [`Ping::ping`] per answer.
#[derive(Debug)]
pub struct Ping {
    sock: tokio::io::BufReader<TcpStream>,
}

/// Opens a long-lived connection to `addr`.
pub async fn ping(addr: SocketAddr, timeout: Duration) -> Result<Ping> {
    let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {addr}: timed out"))?
        .with_context(|| format!("connecting to {addr}"))?;
    Ok(Ping {
        sock: tokio::io::BufReader::new(s),
    })
}

impl Ping {
    /// One round trip on the connection; returns the answer (a [`body`]).
    pub async fn ping(&mut self, timeout: Duration) -> Result<String> {
        use tokio::io::AsyncBufReadExt;
        let fut = async {
            self.sock.get_mut().write_all(PING).await?;
            let mut line = String::new();
            if self.sock.read_line(&mut line).await? == 0 {
                bail!("connection closed");
            }
            Ok(line)
        };
        tokio::time::timeout(timeout, fut)
            .await
            .context("no answer on the long-lived connection")?
    }
}

/// `GET /` over a fresh connection to `addr`; returns the body.
pub async fn get(addr: SocketAddr, timeout: Duration) -> Result<String> {
    let fut = async {
        let mut s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        s.write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out).into_owned();
        match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
            _ => bail!("unexpected answer from {addr}: {text:?}"),
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .with_context(|| format!("no answer from {addr} within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_its_names() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        tokio::spawn(serve(addr, "n1".into(), "p1".into()));
        let mut last = None;
        for _ in 0..50 {
            match get(addr, Duration::from_secs(2)).await {
                Ok(b) => {
                    last = Some(b);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let b = last.expect("server answered");
        assert_eq!(parse_body(&b), Some(("n1".to_string(), "p1".to_string())));
        // A long-lived connection answers every ping on the same socket.
        let mut p = ping(addr, Duration::from_secs(2)).await.unwrap();
        for _ in 0..3 {
            let b = p.ping(Duration::from_secs(2)).await.unwrap();
            assert_eq!(parse_body(&b), Some(("n1".to_string(), "p1".to_string())));
        }
    }
}
