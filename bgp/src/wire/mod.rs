//! BGP messages: our own types, converted to and from `netgauze-bgp-pkt`.
//!
//! - [`encode`] / [`decode`] / [`message_length`]: one message at a time.
//! - [`pack_updates`]: many prefixes into as few UPDATEs as fit in 4096 bytes.
//! - Export rules (AS_PATH width, eBGP prepend, LOCAL_PREF) come from
//!   [`SessionContext`]; see [`encode`].

mod codec;
mod errors;
mod ext_community;
mod types;
mod update_builder;
mod update_decoder;

pub use codec::{Decoded, HEADER_LEN, decode, encode, message_length};
pub use errors::{DecodeError, EncodeError, ErrorAction, codes};
pub use types::*;
pub(crate) use update_builder::pack_updates_iter;
pub use update_builder::{DEFAULT_LOCAL_PREF, pack_updates};
