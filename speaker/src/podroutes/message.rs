//! The rtnetlink messages the speaker sends and reads: routes and addresses, nothing else.
//!
//! Why not `netlink_packet_route::RouteNetlinkMessage`: its parser handles every rtnetlink
//! family (links with all their kinds, traffic control, neighbours, rules, ...), and a
//! program that parses one links all of it, about 300 KB of code the speaker never runs
//! but that the kernel maps (and counts in RSS) on every node. Here a message of any
//! other type is kept as its type number only, and the route and address parts of the
//! same crate do the encoding.

use std::fmt;

use rtnetlink::packet_core::{
    DecodeError, Emitable, NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, Parseable,
};
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::route::RouteMessage;

const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;

/// One rtnetlink message of the kinds the speaker uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtMessage {
    /// `RTM_NEWROUTE`: a route to create or replace, or one of a dump's answers.
    NewRoute(RouteMessage),
    /// `RTM_DELROUTE`: a route to delete.
    DelRoute(RouteMessage),
    /// `RTM_GETROUTE`: a route dump request (with `NLM_F_DUMP`).
    GetRoute(RouteMessage),
    /// `RTM_NEWADDR`: one of an address dump's answers.
    NewAddress(AddressMessage),
    /// `RTM_GETADDR`: an address dump request (with `NLM_F_DUMP`).
    GetAddress(AddressMessage),
    /// A message of another type, read but not decoded (its type number).
    Other(u16),
}

impl NetlinkSerializable for RtMessage {
    fn message_type(&self) -> u16 {
        match self {
            RtMessage::NewRoute(_) => RTM_NEWROUTE,
            RtMessage::DelRoute(_) => RTM_DELROUTE,
            RtMessage::GetRoute(_) => RTM_GETROUTE,
            RtMessage::NewAddress(_) => RTM_NEWADDR,
            RtMessage::GetAddress(_) => RTM_GETADDR,
            RtMessage::Other(kind) => *kind,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            RtMessage::NewRoute(m) | RtMessage::DelRoute(m) | RtMessage::GetRoute(m) => {
                m.buffer_len()
            }
            RtMessage::NewAddress(m) | RtMessage::GetAddress(m) => m.buffer_len(),
            RtMessage::Other(_) => 0,
        }
    }

    fn serialize(&self, buffer: &mut [u8]) {
        match self {
            RtMessage::NewRoute(m) | RtMessage::DelRoute(m) | RtMessage::GetRoute(m) => {
                m.emit(buffer)
            }
            RtMessage::NewAddress(m) | RtMessage::GetAddress(m) => m.emit(buffer),
            RtMessage::Other(_) => {}
        }
    }
}

/// A message of a known type whose body did not decode.
#[derive(Debug)]
pub struct BadMessage {
    kind: u16,
    error: DecodeError,
}

impl fmt::Display for BadMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtnetlink message type {}: {}", self.kind, self.error)
    }
}

impl std::error::Error for BadMessage {}

impl NetlinkDeserializable for RtMessage {
    type Error = BadMessage;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        let kind = header.message_type;
        let bad = |error| BadMessage { kind, error };
        Ok(match kind {
            RTM_NEWROUTE => RtMessage::NewRoute(RouteMessage::parse(payload).map_err(bad)?),
            RTM_DELROUTE => RtMessage::DelRoute(RouteMessage::parse(payload).map_err(bad)?),
            RTM_GETROUTE => RtMessage::GetRoute(RouteMessage::parse(payload).map_err(bad)?),
            RTM_NEWADDR => RtMessage::NewAddress(AddressMessage::parse(payload).map_err(bad)?),
            RTM_GETADDR => RtMessage::GetAddress(AddressMessage::parse(payload).map_err(bad)?),
            other => RtMessage::Other(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};

    fn route() -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = rtnetlink::packet_route::AddressFamily::Inet;
        m.header.destination_prefix_length = 24;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                "10.244.3.0".parse().unwrap(),
            )));
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                "172.17.0.22".parse().unwrap(),
            )));
        m.attributes.push(RouteAttribute::Priority(2000));
        m
    }

    fn bytes<I: NetlinkSerializable + fmt::Debug>(payload: I) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = 7;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
        msg.finalize();
        let mut out = vec![0; msg.buffer_len()];
        msg.serialize(&mut out);
        out
    }

    /// The same bytes as the full rtnetlink type, both ways, for every kind we use.
    #[test]
    fn encodes_and_decodes_like_the_full_message_type() {
        let cases = [
            (
                RtMessage::NewRoute(route()),
                RouteNetlinkMessage::NewRoute(route()),
            ),
            (
                RtMessage::DelRoute(route()),
                RouteNetlinkMessage::DelRoute(route()),
            ),
            (
                RtMessage::GetRoute(route()),
                RouteNetlinkMessage::GetRoute(route()),
            ),
            (
                RtMessage::GetAddress(AddressMessage::default()),
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            ),
        ];
        for (ours, full) in cases {
            let wire = bytes(ours.clone());
            assert_eq!(wire, bytes(full), "{ours:?}");
            let back = NetlinkMessage::<RtMessage>::deserialize(&wire).expect("decodes");
            assert_eq!(back.payload, NetlinkPayload::InnerMessage(ours));
        }
    }

    /// A link message (type 16) is read as its type only, not decoded.
    #[test]
    fn other_types_are_kept_as_their_number() {
        let full = RouteNetlinkMessage::NewLink(Default::default());
        let back = NetlinkMessage::<RtMessage>::deserialize(&bytes(full)).expect("decodes");
        assert_eq!(
            back.payload,
            NetlinkPayload::InnerMessage(RtMessage::Other(16))
        );
    }

    #[test]
    fn a_truncated_route_body_is_an_error() {
        let mut wire = bytes(RtMessage::NewRoute(route()));
        // Cut the gateway attribute in half but keep the header's length consistent.
        wire.truncate(wire.len() - 6);
        let len = wire.len() as u32;
        wire[..4].copy_from_slice(&len.to_ne_bytes());
        assert!(NetlinkMessage::<RtMessage>::deserialize(&wire).is_err());
    }
}
