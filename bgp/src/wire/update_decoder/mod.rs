//! UPDATE decoding with RFC 7606 error handling.
//!
//! We frame the UPDATE ourselves (withdrawn routes, then each path attribute as one
//! slice, then NLRI) and hand every piece to netgauze to parse. Framing per attribute
//! is what RFC 7606 needs: a malformed attribute can then be judged on its own
//! (treat-as-withdraw, attribute-discard or session reset) instead of failing the whole
//! message, which is all netgauze's whole-message parser can do.

mod as_path;
mod attribute;
mod nlri;
mod rfc7606;

use ipnet::IpNet;
use netgauze_bgp_pkt::path_attribute::AsPath;

use super::errors::{DecodeError, ErrorAction, codes};
use super::types::{
    AddressFamily, AsSegment, Message, NextHop, PathAttributes, SessionContext, Update,
};
use as_path::merge_as4_path;
use attribute::handle_attribute;
use nlri::parse_v4_prefixes;
use rfc7606::overrun;

const ORIGIN: u8 = 1;
const AS_PATH: u8 = 2;
const NEXT_HOP: u8 = 3;
const MED: u8 = 4;
const LOCAL_PREF: u8 = 5;
const COMMUNITIES: u8 = 8;
const ORIGINATOR_ID: u8 = 9;
const CLUSTER_LIST: u8 = 10;
const MP_REACH: u8 = 14;
const MP_UNREACH: u8 = 15;
const EXT_COMMUNITIES: u8 = 16;
const LARGE_COMMUNITIES: u8 = 32;

const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_EXTENDED: u8 = 0x10;

fn reset(subcode: u8, data: Vec<u8>, reason: impl Into<String>) -> DecodeError {
    DecodeError::new(codes::UPDATE, subcode, data, reason)
}

fn read_u16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

/// Attribute type codes already seen in this UPDATE.
struct Seen([bool; 256]);

impl Default for Seen {
    fn default() -> Self {
        Seen([false; 256])
    }
}

/// Everything collected from the attribute list.
#[derive(Default)]
struct Collected {
    attrs: PathAttributes,
    seen: Seen,
    next_hop: Option<std::net::Ipv4Addr>,
    as_path: Option<AsPath>,
    as4_path: Option<Vec<AsSegment>>,
    mp_reach: Option<(NextHop, Vec<IpNet>)>,
    mp_unreach: Option<(AddressFamily, Vec<IpNet>)>,
    treat_as_withdraw: bool,
}

/// Decodes an UPDATE body (after the 19-byte header).
pub(crate) fn decode_update(
    body: &[u8],
    ctx: &SessionContext,
) -> Result<(Message, Vec<ErrorAction>), DecodeError> {
    let malformed = |reason: String| reset(codes::MALFORMED_ATTRIBUTE_LIST, Vec::new(), reason);
    let wlen = read_u16(body, 0).ok_or_else(|| malformed("UPDATE too short".into()))?;
    let alen = read_u16(body, 2 + wlen).ok_or_else(|| {
        malformed(format!(
            "withdrawn routes length {wlen} overruns the message"
        ))
    })?;
    let attrs_start = 4 + wlen;
    if attrs_start + alen > body.len() {
        return Err(malformed(format!(
            "total path attribute length {alen} overruns the message"
        )));
    }
    let withdrawn = parse_v4_prefixes(&body[2..2 + wlen], "withdrawn routes")?;
    let attr_bytes = &body[attrs_start..attrs_start + alen];
    let nlri = parse_v4_prefixes(&body[attrs_start + alen..], "NLRI")?;

    // RFC 4724: End-of-RIB for IPv4 unicast is an UPDATE with nothing in it.
    if withdrawn.is_empty() && alen == 0 && nlri.is_empty() {
        return Ok((Message::EndOfRib(AddressFamily::Ipv4Unicast), Vec::new()));
    }

    let mut actions = Vec::new();
    let mut c = Collected::default();
    let mut pctx = super::codec::parsing_context(ctx.four_octet_as);
    let mut off = 0;
    let mut attr_count = 0;
    while off < attr_bytes.len() {
        let rest = &attr_bytes[off..];
        let flags = rest[0];
        let hdr = if flags & FLAG_EXTENDED != 0 { 4 } else { 3 };
        if rest.len() < hdr {
            // RFC 7606 4, second case: too few bytes left for an attribute header.
            overrun(&mut c, &mut actions, rest.get(1).copied(), || {
                format!("{} bytes left: truncated path attribute header", rest.len())
            })?;
            break;
        }
        let type_code = rest[1];
        let vlen = if hdr == 4 {
            usize::from(u16::from_be_bytes([rest[2], rest[3]]))
        } else {
            usize::from(rest[2])
        };
        if hdr + vlen > rest.len() {
            // RFC 7606 4, first case: the attribute overruns the Total Path Attribute
            // Length, which still locates the NLRI.
            overrun(&mut c, &mut actions, Some(type_code), || {
                format!("attribute {type_code} length {vlen} overruns the attribute list")
            })?;
            break;
        }
        let raw = &rest[..hdr + vlen];
        off += hdr + vlen;
        attr_count += 1;
        handle_attribute(
            raw,
            flags,
            type_code,
            hdr,
            ctx,
            &mut pctx,
            &mut c,
            &mut actions,
        )?;
    }

    // RFC 4724: End-of-RIB for other families is an UPDATE with only an empty
    // MP_UNREACH_NLRI.
    if withdrawn.is_empty()
        && nlri.is_empty()
        && attr_count == 1
        && let Some((family, list)) = &c.mp_unreach
        && list.is_empty()
    {
        return Ok((Message::EndOfRib(*family), actions));
    }

    let has_reach = !nlri.is_empty() || c.mp_reach.as_ref().is_some_and(|(_, p)| !p.is_empty());
    if has_reach && !c.treat_as_withdraw {
        // RFC 7606 3(d): a missing well-known mandatory attribute -> treat-as-withdraw.
        let mut missing = Vec::new();
        if !c.seen.0[usize::from(ORIGIN)] {
            missing.push("ORIGIN");
        }
        if c.as_path.is_none() {
            missing.push("AS_PATH");
        }
        if !nlri.is_empty() && c.next_hop.is_none() {
            missing.push("NEXT_HOP");
        }
        if !missing.is_empty() {
            c.treat_as_withdraw = true;
            actions.push(ErrorAction::TreatAsWithdraw {
                type_code: None,
                reason: format!("missing well-known attribute(s) {}", missing.join(", ")),
            });
        }
    }

    let mut update = Update {
        withdrawn,
        ..Update::default()
    };
    if let Some((_, list)) = c.mp_unreach.take() {
        update.withdrawn.extend(list);
    }
    if c.treat_as_withdraw {
        update.withdrawn.extend(nlri);
        if let Some((_, list)) = c.mp_reach.take() {
            update.withdrawn.extend(list);
        }
        return Ok(nothing_usable(update, actions));
    }
    if has_reach {
        let mut attrs = std::mem::take(&mut c.attrs);
        if let Some(path) = c.as_path.take() {
            attrs.as_path = merge_as4_path(path, c.as4_path.take(), ctx);
        }
        let mut groups: Vec<(NextHop, Vec<IpNet>)> = Vec::new();
        if let Some(nh) = c.next_hop
            && !nlri.is_empty()
        {
            groups.push((NextHop::V4(nh), nlri));
        }
        if let Some((nh, list)) = c.mp_reach.take()
            && !list.is_empty()
        {
            groups.push((nh, list));
        }
        let mut groups = groups.into_iter();
        if let Some((nh, list)) = groups.next() {
            update.next_hop = Some(nh);
            update.announced = list;
        }
        update.extra_announced = groups.collect();
        update.attributes = Some(attrs);
    }
    Ok(nothing_usable(update, actions))
}

/// An UPDATE that neither withdraws nor announces anything we handle (only another
/// family, or malformed attributes without NLRI) is reported as [`Message::Keepalive`]
/// with an [`ErrorAction::Ignored`]: an empty [`Update`] would look like an IPv4
/// End-of-RIB (real End-of-RIB markers were returned as [`Message::EndOfRib`] before).
fn nothing_usable(update: Update, mut actions: Vec<ErrorAction>) -> (Message, Vec<ErrorAction>) {
    if update.withdrawn.is_empty()
        && update.announced.is_empty()
        && update.extra_announced.is_empty()
    {
        actions.push(ErrorAction::Ignored {
            reason: "UPDATE without prefixes of a family we handle".into(),
        });
        return (Message::Keepalive, actions);
    }
    (Message::Update(update), actions)
}
