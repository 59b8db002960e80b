//! Cease NOTIFICATIONs and the RFC 8203 shutdown communication they may carry.

use super::codes;
use crate::wire::Notification;

/// Encode an RFC 8203 shutdown communication: a length byte and UTF-8 text, cut at a
/// character boundary so it fits in 255 bytes.
pub fn encode_shutdown_message(msg: &str) -> Vec<u8> {
    let mut end = msg.len().min(255);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(end + 1);
    out.push(end as u8);
    out.extend_from_slice(&msg.as_bytes()[..end]);
    out
}

/// Decode an RFC 8203 shutdown communication, if the data holds a valid one.
pub fn decode_shutdown_message(data: &[u8]) -> Option<String> {
    let (&len, rest) = data.split_first()?;
    let text = rest.get(..usize::from(len))?;
    std::str::from_utf8(text).ok().map(str::to_owned)
}

/// Build a Cease NOTIFICATION with an optional shutdown communication.
pub fn cease(subcode: u8, reason: Option<&str>) -> Notification {
    Notification {
        code: codes::CEASE,
        subcode,
        data: reason.map(encode_shutdown_message).unwrap_or_default(),
    }
}
