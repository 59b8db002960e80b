//! Whole-message encode/decode: header framing, OPEN, NOTIFICATION, KEEPALIVE,
//! ROUTE-REFRESH; UPDATEs are delegated to `update_builder` and `update_decoder`.

use std::collections::HashMap;

use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::{
    BgpCapability, FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability, UnrecognizedCapability,
};
use netgauze_bgp_pkt::iana::RouteRefreshSubcode;
use netgauze_bgp_pkt::notification::{BgpNotificationMessage, OpenMessageError};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::route_refresh::BgpRouteRefreshMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::{ParseFrom, ParseFromWithOneInput};

use super::errors::{DecodeError, EncodeError, ErrorAction, codes};
use super::types::{
    AS_TRANS, AddressFamily, Capability, MAX_MESSAGE_LEN, Message, Notification, Open,
    SessionContext,
};
use super::update_builder::{encode_end_of_rib_v6, encode_update, write_message};
use super::update_decoder::decode_update;

/// BGP header: marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;

const TYPE_OPEN: u8 = 1;
const TYPE_UPDATE: u8 = 2;
const TYPE_NOTIFICATION: u8 = 3;
const TYPE_KEEPALIVE: u8 = 4;
const TYPE_ROUTE_REFRESH: u8 = 5;

/// A decoded message and the RFC 7606 decisions taken while decoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The message, with treat-as-withdraw / attribute-discard already applied.
    pub message: Message,
    /// What was done about malformed or ignored parts, for logging.
    pub actions: Vec<ErrorAction>,
}

pub(crate) fn family_to_address_type(family: AddressFamily) -> AddressType {
    match family {
        AddressFamily::Ipv4Unicast => AddressType::Ipv4Unicast,
        AddressFamily::Ipv6Unicast => AddressType::Ipv6Unicast,
    }
}

fn address_type_to_family(t: AddressType) -> Option<AddressFamily> {
    match t {
        AddressType::Ipv4Unicast => Some(AddressFamily::Ipv4Unicast),
        AddressType::Ipv6Unicast => Some(AddressFamily::Ipv6Unicast),
        _ => None,
    }
}

/// Encodes one message, including the 19-byte header.
///
/// Export rules applied to UPDATEs (from `ctx`):
/// - AS_PATH width follows the *negotiated* 4-octet capability, never the size of the
///   numbers. On a 2-octet session numbers above 65535 become `AS_TRANS` and an
///   AS4_PATH carries the real path (RFC 6793).
/// - eBGP: our AS is prepended and LOCAL_PREF is never sent.
/// - iBGP: AS_PATH as given, LOCAL_PREF always sent (100 when the route has none).
/// - IPv4 prefixes go in the classic NLRI with a NEXT_HOP attribute; IPv6 prefixes and
///   withdrawals in MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760, next hop per RFC 2545).
///
/// Errors if the result exceeds [`MAX_MESSAGE_LEN`]; use [`super::pack_updates`] to
/// split large sets.
pub fn encode(msg: &Message, ctx: &SessionContext) -> Result<Vec<u8>, EncodeError> {
    match msg {
        Message::Open(open) => write_message(&BgpMessage::Open(open_to_netgauze(open))),
        Message::Update(update) => encode_update(update, ctx),
        Message::EndOfRib(AddressFamily::Ipv4Unicast) => {
            encode_update(&super::types::Update::default(), ctx)
        }
        Message::EndOfRib(AddressFamily::Ipv6Unicast) => encode_end_of_rib_v6(),
        Message::Notification(n) => encode_notification(n),
        Message::Keepalive => write_message(&BgpMessage::KeepAlive),
        Message::RouteRefresh(family) => {
            write_message(&BgpMessage::RouteRefresh(BgpRouteRefreshMessage::new(
                family_to_address_type(*family),
                RouteRefreshSubcode::NormalRequest,
            )))
        }
    }
}

fn open_to_netgauze(open: &Open) -> BgpOpenMessage {
    let my_as = u16::try_from(open.my_as).unwrap_or(AS_TRANS);
    let caps: Vec<BgpCapability> = open
        .capabilities
        .iter()
        .map(capability_to_netgauze)
        .collect();
    let params = if caps.is_empty() {
        vec![]
    } else {
        vec![BgpOpenMessageParameter::Capabilities(
            caps.into_boxed_slice(),
        )]
    };
    BgpOpenMessage::new(my_as, open.hold_time, open.bgp_id, params)
}

fn capability_to_netgauze(cap: &Capability) -> BgpCapability {
    match cap {
        Capability::Multiprotocol(f) => BgpCapability::MultiProtocolExtensions(
            MultiProtocolExtensionsCapability::new(family_to_address_type(*f)),
        ),
        Capability::RouteRefresh => BgpCapability::RouteRefresh,
        Capability::FourOctetAs(asn) => {
            BgpCapability::FourOctetAs(FourOctetAsCapability::new(*asn))
        }
        Capability::GracefulRestart {
            restarting,
            restart_time,
            families,
        } => BgpCapability::GracefulRestartCapability(GracefulRestartCapability::new(
            *restarting,
            false,
            // The field is 12 bits wide (RFC 4724 3): values above 4095 cannot be sent.
            (*restart_time).min(0x0fff),
            families
                .iter()
                .map(|(f, fwd)| GracefulRestartAddressFamily::new(*fwd, family_to_address_type(*f)))
                .collect::<Vec<_>>(),
        )),
        Capability::Unknown { code, value } => {
            // Let netgauze interpret the raw capability; keep it raw if it cannot.
            let mut raw = Vec::with_capacity(value.len() + 2);
            raw.push(*code);
            raw.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
            raw.extend_from_slice(value);
            let mut cur = SliceReader::new(&raw);
            match BgpCapability::parse(&mut cur) {
                Ok(c) if cur.is_empty() => c,
                _ => BgpCapability::Unrecognized(UnrecognizedCapability::new(*code, value.clone())),
            }
        }
    }
}

fn capability_from_netgauze(cap: &BgpCapability) -> Capability {
    match cap {
        BgpCapability::MultiProtocolExtensions(mp) => {
            if let Some(f) = address_type_to_family(mp.address_type()) {
                return Capability::Multiprotocol(f);
            }
        }
        BgpCapability::RouteRefresh => return Capability::RouteRefresh,
        BgpCapability::FourOctetAs(c) => return Capability::FourOctetAs(c.asn4()),
        BgpCapability::GracefulRestartCapability(gr) => {
            return Capability::GracefulRestart {
                restarting: gr.restart(),
                restart_time: gr.time(),
                families: gr
                    .address_families()
                    .iter()
                    .filter_map(|af| {
                        address_type_to_family(af.address_type())
                            .map(|f| (f, af.forwarding_state()))
                    })
                    .collect(),
            };
        }
        _ => {}
    }
    // Everything else is kept raw: serialize it back with netgauze and strip code/len.
    let mut raw = Vec::new();
    match cap.write(&mut raw) {
        Ok(()) if raw.len() >= 2 => Capability::Unknown {
            code: raw[0],
            value: raw[2..].to_vec(),
        },
        _ => Capability::Unknown {
            code: cap.code().map(u8::from).unwrap_or_else(|c| c),
            value: Vec::new(),
        },
    }
}

fn open_from_netgauze(open: &BgpOpenMessage) -> Open {
    let capabilities: Vec<Capability> = open
        .capabilities()
        .into_iter()
        .map(capability_from_netgauze)
        .collect();
    let my_as = capabilities
        .iter()
        .find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
        .unwrap_or(u32::from(open.my_as()));
    Open {
        version: open.version(),
        my_as,
        hold_time: open.hold_time(),
        bgp_id: open.bgp_id(),
        capabilities,
    }
}

fn encode_notification(n: &Notification) -> Result<Vec<u8>, EncodeError> {
    // netgauze models only the code/subcode pairs it knows; parse ours with it and use
    // its encoder. For pairs it cannot represent (newer subcodes) we write the header
    // and the three NOTIFICATION fields ourselves: a netgauze gap, 3 fields.
    let mut body = Vec::with_capacity(n.data.len() + 2);
    body.push(n.code);
    body.push(n.subcode);
    body.extend_from_slice(&n.data);
    let mut cur = SliceReader::new(&body);
    if let Ok(parsed) = BgpNotificationMessage::parse(&mut cur)
        && cur.is_empty()
    {
        let bytes = write_message(&BgpMessage::Notification(parsed))?;
        if bytes.get(HEADER_LEN..) == Some(body.as_slice()) {
            return Ok(bytes);
        }
    }
    let len = HEADER_LEN + body.len();
    if len > MAX_MESSAGE_LEN {
        return Err(EncodeError::TooLong {
            len,
            limit: MAX_MESSAGE_LEN,
        });
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.push(TYPE_NOTIFICATION);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Converts a netgauze NOTIFICATION (as produced by its error mapping) to ours by
/// letting netgauze serialize it.
fn notification_from_netgauze(n: &BgpNotificationMessage) -> Notification {
    let mut raw = Vec::new();
    if n.write(&mut raw).is_ok() && raw.len() >= 2 {
        Notification {
            code: raw[0],
            subcode: raw[1],
            data: raw[2..].to_vec(),
        }
    } else {
        Notification {
            code: codes::UPDATE,
            subcode: 0,
            data: Vec::new(),
        }
    }
}

/// Validates a message header and returns the full message length.
///
/// Needs at least 19 bytes (else `Ok(None)`: read more). Checks the all-ones marker
/// (1/1), the length 19..=4096 and its minimum per type (1/2), and the type (1/3).
pub fn message_length(header: &[u8]) -> Result<Option<usize>, DecodeError> {
    if header.len() < HEADER_LEN {
        return Ok(None);
    }
    if header[..16].iter().any(|b| *b != 0xff) {
        return Err(DecodeError::new(
            codes::HEADER,
            codes::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
            "message marker is not all ones",
        ));
    }
    let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let msg_type = header[18];
    let bad_len = || {
        DecodeError::new(
            codes::HEADER,
            codes::BAD_MESSAGE_LENGTH,
            (len as u16).to_be_bytes().to_vec(),
            format!("bad length {len} for message type {msg_type}"),
        )
    };
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(bad_len());
    }
    // RFC 4271 6.1: minimum lengths per type; KEEPALIVE is exactly 19.
    let ok = match msg_type {
        TYPE_OPEN => len >= 29,
        TYPE_UPDATE => len >= 23,
        TYPE_NOTIFICATION => len >= 21,
        TYPE_KEEPALIVE => len == HEADER_LEN,
        TYPE_ROUTE_REFRESH => len == 23,
        other => {
            return Err(DecodeError::new(
                codes::HEADER,
                codes::BAD_MESSAGE_TYPE,
                vec![other],
                format!("unknown message type {other}"),
            ));
        }
    };
    if !ok {
        return Err(bad_len());
    }
    Ok(Some(len))
}

/// Decodes one complete frame (header included, exactly the length it declares).
///
/// UPDATE errors follow RFC 7606: most malformed attributes lead to treat-as-withdraw
/// or attribute-discard (reported in [`Decoded::actions`]); only framing errors, broken
/// NLRI and broken MP_REACH/MP_UNREACH end the session.
///
/// Messages that must be ignored are reported as [`Message::Keepalive`] with an
/// [`ErrorAction::Ignored`] action (they still prove the peer is alive): a ROUTE-REFRESH
/// for a family we do not support (RFC 2918), and an UPDATE that carries no prefix of a
/// family we handle (e.g. only EVPN), which as an empty [`super::Update`] would look
/// like an IPv4 End-of-RIB. End-of-RIB markers come as [`Message::EndOfRib`].
pub fn decode(frame: &[u8], ctx: &SessionContext) -> Result<Decoded, DecodeError> {
    let len = message_length(frame)?.ok_or_else(|| {
        DecodeError::new(
            codes::HEADER,
            codes::BAD_MESSAGE_LENGTH,
            Vec::new(),
            "frame shorter than a BGP header",
        )
    })?;
    if frame.len() != len {
        return Err(DecodeError::new(
            codes::HEADER,
            codes::BAD_MESSAGE_LENGTH,
            (len as u16).to_be_bytes().to_vec(),
            format!("frame has {} bytes but the header says {len}", frame.len()),
        ));
    }
    let body = &frame[HEADER_LEN..];
    let done = |message| {
        Ok(Decoded {
            message,
            actions: Vec::new(),
        })
    };
    match frame[18] {
        TYPE_OPEN => done(Message::Open(decode_open(body)?)),
        TYPE_UPDATE => {
            let (message, actions) = decode_update(body, ctx)?;
            Ok(Decoded { message, actions })
        }
        TYPE_NOTIFICATION => done(Message::Notification(decode_notification(body))),
        TYPE_KEEPALIVE => done(Message::Keepalive),
        _ => decode_route_refresh(body),
    }
}

/// netgauze's parsing context as ferrolb uses it everywhere: no multiple labels, no
/// ADD-PATH; non-unicast NLRI in a withdraw or update and a malformed path attribute are
/// errors (the caller turns them into the right NOTIFICATION or treat-as-withdraw), a
/// capability it cannot parse is not (RFC 5492: ignored).
pub(crate) fn parsing_context(four_octet_as: bool) -> BgpParsingContext {
    BgpParsingContext::new(
        four_octet_as,
        HashMap::new(),
        HashMap::new(),
        true,
        true,
        false,
        true,
    )
}

fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
    // RFC 5492: capabilities we cannot parse are ignored, not an error.
    let mut pctx = parsing_context(true);
    let mut cur = SliceReader::new(body);
    let open = BgpOpenMessage::parse(&mut cur, &mut pctx).map_err(|e| {
        let reason = format!("bad OPEN: {e}");
        let n = notification_from_netgauze(&BgpNotificationMessage::OpenMessageError(
            OpenMessageError::from(e),
        ));
        DecodeError {
            notification: n,
            reason,
        }
    })?;
    if !cur.is_empty() {
        return Err(DecodeError::new(
            codes::OPEN,
            0,
            Vec::new(),
            format!("{} bytes after the OPEN parameters", cur.remaining()),
        ));
    }
    Ok(open_from_netgauze(&open))
}

fn decode_notification(body: &[u8]) -> Notification {
    let mut cur = SliceReader::new(body);
    if let Ok(n) = BgpNotificationMessage::parse(&mut cur)
        && cur.is_empty()
    {
        let ours = notification_from_netgauze(&n);
        if ours.code == body[0] && ours.subcode == body[1] {
            return ours;
        }
    }
    // netgauze rejects codes/subcodes it does not know; the fields are plain bytes.
    Notification {
        code: body[0],
        subcode: body[1],
        data: body[2..].to_vec(),
    }
}

fn decode_route_refresh(body: &[u8]) -> Result<Decoded, DecodeError> {
    let mut cur = SliceReader::new(body);
    let ignored = |reason: String| {
        Ok(Decoded {
            message: Message::Keepalive,
            actions: vec![ErrorAction::Ignored { reason }],
        })
    };
    match BgpRouteRefreshMessage::parse(&mut cur) {
        Ok(rr) => match address_type_to_family(rr.address_type()) {
            Some(f) if rr.operation_type() == RouteRefreshSubcode::NormalRequest => Ok(Decoded {
                message: Message::RouteRefresh(f),
                actions: Vec::new(),
            }),
            Some(_) => ignored("enhanced route refresh marker (not negotiated)".into()),
            None => ignored(format!(
                "ROUTE-REFRESH for unsupported {:?}",
                rr.address_type()
            )),
        },
        Err(e) => ignored(format!("ROUTE-REFRESH not understood: {e}")),
    }
}
