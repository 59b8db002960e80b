//! UPDATE decoding with RFC 7606 error handling.
//!
//! We frame the UPDATE ourselves (withdrawn routes, then each path attribute as one
//! slice, then NLRI) and hand every piece to netgauze to parse. Framing per attribute
//! is what RFC 7606 needs: a malformed attribute can then be judged on its own
//! (treat-as-withdraw, attribute-discard or session reset) instead of failing the whole
//! message, which is all netgauze's whole-message parser can do.

use std::collections::HashMap;

use ipnet::{IpNet, Ipv4Net};
use netgauze_bgp_pkt::path_attribute::{
    AsPath, AsPathSegmentType, MpReach, MpUnreach, PathAttribute, PathAttributeValue,
};
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::{ParseFrom, ParseFromWithOneInput};

use super::errors::{DecodeError, ErrorAction, codes};
use super::types::{
    AS_TRANS, AddressFamily, AsSegment, LargeCommunity, Message, NextHop, Origin, PathAttributes,
    SessionContext, Update,
};

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

/// What RFC 7606 says to do when an attribute of this type is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnError {
    TreatAsWithdraw,
    Discard,
    Reset,
}

fn on_error(type_code: u8, ctx: &SessionContext) -> OnError {
    match type_code {
        // 7606 7.1-7.4, 7.8-7.10, 7.14; RFC 8092 section 5 for large communities.
        ORIGIN | AS_PATH | NEXT_HOP | MED | COMMUNITIES | ORIGINATOR_ID | CLUSTER_LIST
        | EXT_COMMUNITIES | LARGE_COMMUNITIES => OnError::TreatAsWithdraw,
        // 7606 7.5: from iBGP treat-as-withdraw; from eBGP it is discarded anyway.
        LOCAL_PREF if ctx.is_ibgp() => OnError::TreatAsWithdraw,
        LOCAL_PREF => OnError::Discard,
        // 7606 7.11/7.12 (we do not do "AFI/SAFI disable").
        MP_REACH | MP_UNREACH => OnError::Reset,
        // 7606 7.6, 7.7; RFC 6793 as updated by 7606 for AS4_PATH/AS4_AGGREGATOR;
        // attributes we do not use are simply dropped.
        _ => OnError::Discard,
    }
}

fn reset(subcode: u8, data: Vec<u8>, reason: impl Into<String>) -> DecodeError {
    DecodeError::new(codes::UPDATE, subcode, data, reason)
}

/// Parses an IPv4 prefix list (withdrawn routes or NLRI) with netgauze's prefix parser.
fn parse_v4_prefixes(bytes: &[u8], what: &str) -> Result<Vec<IpNet>, DecodeError> {
    let mut cur = SliceReader::new(bytes);
    let mut out = Vec::with_capacity(bytes.len() / 4);
    while !cur.is_empty() {
        let net = Ipv4Net::parse(&mut cur).map_err(|e| {
            reset(
                codes::INVALID_NETWORK_FIELD,
                Vec::new(),
                format!("malformed {what}: {e}"),
            )
        })?;
        out.push(IpNet::V4(net));
    }
    Ok(out)
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
    let mut pctx = BgpParsingContext::new(
        ctx.four_octet_as,
        HashMap::new(),
        HashMap::new(),
        true,
        true,
        false,
        true,
    );
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

/// RFC 7606 section 4: an attribute that overruns the attribute list (or a header cut
/// short by it) means treat-as-withdraw, the Total Path Attribute Length locating the
/// NLRI. The "more severe error" exception: an overrunning MP_REACH_NLRI or
/// MP_UNREACH_NLRI hides NLRI we cannot read, so that still resets the session.
fn overrun(
    c: &mut Collected,
    actions: &mut Vec<ErrorAction>,
    type_code: Option<u8>,
    reason: impl FnOnce() -> String,
) -> Result<(), DecodeError> {
    let reason = reason();
    if matches!(type_code, Some(MP_REACH | MP_UNREACH)) {
        return Err(reset(codes::MALFORMED_ATTRIBUTE_LIST, Vec::new(), reason));
    }
    c.treat_as_withdraw = true;
    actions.push(ErrorAction::TreatAsWithdraw { type_code, reason });
    Ok(())
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

/// Handles one complete attribute (`raw` = header + value).
#[allow(clippy::too_many_arguments)]
fn handle_attribute(
    raw: &[u8],
    flags: u8,
    type_code: u8,
    hdr: usize,
    ctx: &SessionContext,
    pctx: &mut BgpParsingContext,
    c: &mut Collected,
    actions: &mut Vec<ErrorAction>,
) -> Result<(), DecodeError> {
    let value = &raw[hdr..];
    // RFC 7606 3(g): MP_REACH/MP_UNREACH twice -> reset; others: keep the first.
    if c.seen.0[usize::from(type_code)] {
        if type_code == MP_REACH || type_code == MP_UNREACH {
            return Err(reset(
                codes::MALFORMED_ATTRIBUTE_LIST,
                Vec::new(),
                format!("attribute {type_code} appears twice"),
            ));
        }
        actions.push(ErrorAction::AttributeDiscard {
            type_code,
            reason: "repeated attribute (first one kept)".into(),
        });
        return Ok(());
    }
    c.seen.0[usize::from(type_code)] = true;

    // MP attributes for families we do not handle are ignored before parsing: we only
    // negotiate IPv4/IPv6 unicast, and netgauze rejects AFIs it does not know.
    if type_code == MP_REACH || type_code == MP_UNREACH {
        if value.len() < 3 {
            return Err(reset(
                codes::OPTIONAL_ATTRIBUTE_ERROR,
                raw.to_vec(),
                format!("attribute {type_code} too short for AFI/SAFI"),
            ));
        }
        let afi = u16::from_be_bytes([value[0], value[1]]);
        let safi = value[2];
        if !matches!((afi, safi), (1, 1) | (2, 1)) {
            actions.push(ErrorAction::Ignored {
                reason: format!("attribute {type_code} for AFI {afi} SAFI {safi}"),
            });
            return Ok(());
        }
        // netgauze 0.13 reads 16 bytes for any IPv6 next hop length other than 32, so
        // check it here (RFC 2545: 16 or 32; RFC 7606 7.11: inconsistent -> reset).
        if type_code == MP_REACH && afi == 2 && !matches!(value.get(3), Some(16 | 32)) {
            return Err(reset(
                codes::OPTIONAL_ATTRIBUTE_ERROR,
                raw.to_vec(),
                format!("MP_REACH_NLRI IPv6 next hop length {:?}", value.get(3)),
            ));
        }
    }

    // Length checks netgauze does not make (RFC 7606 7.8, RFC 8092 5).
    let precheck = match type_code {
        COMMUNITIES if value.is_empty() || !value.len().is_multiple_of(4) => Some(format!(
            "COMMUNITIES length {} is not a non-zero multiple of 4",
            value.len()
        )),
        LARGE_COMMUNITIES if value.is_empty() || !value.len().is_multiple_of(12) => Some(format!(
            "LARGE_COMMUNITIES length {} is not a non-zero multiple of 12",
            value.len()
        )),
        _ => None,
    };
    let parsed = match precheck {
        Some(reason) => Err(reason),
        None => {
            let mut cur = SliceReader::new(raw);
            match PathAttribute::parse(&mut cur, pctx) {
                Ok(_) if !cur.is_empty() => Err("trailing bytes in attribute".to_string()),
                Ok(a) => Ok(a),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    let attr = match parsed {
        Ok(a) => a,
        Err(reason) => {
            c.seen.0[usize::from(type_code)] = matches!(type_code, ORIGIN | AS_PATH | NEXT_HOP);
            return match on_error(type_code, ctx) {
                OnError::TreatAsWithdraw => {
                    c.treat_as_withdraw = true;
                    actions.push(ErrorAction::TreatAsWithdraw {
                        type_code: Some(type_code),
                        reason,
                    });
                    Ok(())
                }
                OnError::Discard => {
                    actions.push(ErrorAction::AttributeDiscard { type_code, reason });
                    Ok(())
                }
                OnError::Reset => Err(reset(
                    codes::OPTIONAL_ATTRIBUTE_ERROR,
                    raw.to_vec(),
                    format!("malformed attribute {type_code}: {reason}"),
                )),
            };
        }
    };

    match attr.value() {
        PathAttributeValue::Origin(o) => {
            c.attrs.origin = match *o as u8 {
                0 => Origin::Igp,
                1 => Origin::Egp,
                _ => Origin::Incomplete,
            }
        }
        PathAttributeValue::AsPath(p) => c.as_path = Some(p.clone()),
        PathAttributeValue::As4Path(p) => {
            c.as4_path = Some(
                p.segments()
                    .iter()
                    .map(|s| segment(s.segment_type(), s.as_numbers().to_vec()))
                    .collect(),
            )
        }
        PathAttributeValue::NextHop(nh) => c.next_hop = Some(nh.next_hop()),
        PathAttributeValue::MultiExitDiscriminator(m) => c.attrs.med = Some(m.metric()),
        // RFC 7606 7.5: LOCAL_PREF from an external peer is discarded.
        PathAttributeValue::LocalPreference(lp) if ctx.is_ibgp() => {
            c.attrs.local_pref = Some(lp.metric())
        }
        PathAttributeValue::Communities(list) => {
            c.attrs.communities = list.communities().iter().map(|x| x.value()).collect()
        }
        PathAttributeValue::LargeCommunities(list) => {
            c.attrs.large_communities = list
                .communities()
                .iter()
                .map(|x| LargeCommunity {
                    global: x.global_admin(),
                    local1: x.local_data1(),
                    local2: x.local_data2(),
                })
                .collect()
        }
        PathAttributeValue::ExtendedCommunities(list) => {
            c.attrs.ext_communities = list
                .communities()
                .iter()
                .filter_map(super::ext_community::from_netgauze)
                .collect()
        }
        PathAttributeValue::MpReach(mp) => mp_reach(mp, raw, c)?,
        PathAttributeValue::MpUnreach(mp) => mp_unreach(mp, raw, c)?,
        PathAttributeValue::UnknownAttribute(_) if flags & FLAG_OPTIONAL == 0 => {
            // RFC 4271 6.3: an unrecognized well-known attribute ends the session.
            return Err(reset(
                codes::UNRECOGNIZED_WELL_KNOWN,
                raw.to_vec(),
                format!("unrecognized well-known attribute {type_code}"),
            ));
        }
        // ATOMIC_AGGREGATE, AGGREGATOR, IPv6 extended communities, unknown optional
        // attributes...: accepted and not kept (we do not re-advertise routes).
        _ => {}
    }
    Ok(())
}

fn mp_reach(mp: &MpReach, raw: &[u8], c: &mut Collected) -> Result<(), DecodeError> {
    match mp {
        MpReach::Ipv6Unicast {
            next_hop_global,
            next_hop_local,
            nlri,
        } => {
            let list = nlri
                .iter()
                .map(|a| IpNet::V6(a.network().address()))
                .collect();
            c.mp_reach = Some((
                NextHop::V6 {
                    global: *next_hop_global,
                    link_local: *next_hop_local,
                },
                list,
            ));
        }
        MpReach::Ipv4Unicast {
            next_hop,
            next_hop_local,
            nlri,
        } => {
            let nh = match next_hop {
                std::net::IpAddr::V4(a) => NextHop::V4(*a),
                std::net::IpAddr::V6(a) => NextHop::V6 {
                    global: *a,
                    link_local: *next_hop_local,
                },
            };
            let list = nlri
                .iter()
                .map(|a| IpNet::V4(a.network().address()))
                .collect();
            c.mp_reach = Some((nh, list));
        }
        _ => {
            return Err(reset(
                codes::OPTIONAL_ATTRIBUTE_ERROR,
                raw.to_vec(),
                "MP_REACH_NLRI decoded to an unexpected family",
            ));
        }
    }
    Ok(())
}

fn mp_unreach(mp: &MpUnreach, raw: &[u8], c: &mut Collected) -> Result<(), DecodeError> {
    match mp {
        MpUnreach::Ipv6Unicast { nlri } => {
            let list = nlri
                .iter()
                .map(|a| IpNet::V6(a.network().address()))
                .collect();
            c.mp_unreach = Some((AddressFamily::Ipv6Unicast, list));
        }
        MpUnreach::Ipv4Unicast { nlri } => {
            let list = nlri
                .iter()
                .map(|a| IpNet::V4(a.network().address()))
                .collect();
            c.mp_unreach = Some((AddressFamily::Ipv4Unicast, list));
        }
        _ => {
            return Err(reset(
                codes::OPTIONAL_ATTRIBUTE_ERROR,
                raw.to_vec(),
                "MP_UNREACH_NLRI decoded to an unexpected family",
            ));
        }
    }
    Ok(())
}

/// Our segment for a netgauze segment type (netgauze rejects confederation segments,
/// which makes the AS_PATH malformed: treat-as-withdraw).
fn segment(ty: AsPathSegmentType, nums: Vec<u32>) -> AsSegment {
    match ty {
        AsPathSegmentType::AsSequence => AsSegment::Sequence(nums),
        AsPathSegmentType::AsSet => AsSegment::Set(nums),
    }
}

/// Number of AS "hops" a path counts for (a set counts as one, RFC 4271 9.1.2.2).
fn path_len(path: &[AsSegment]) -> usize {
    path.iter()
        .map(|s| match s {
            AsSegment::Sequence(n) => n.len(),
            AsSegment::Set(_) => 1,
        })
        .sum()
}

/// The AS_PATH with 4-octet numbers. On a 2-octet session, AS_TRANS entries are
/// replaced from AS4_PATH per RFC 6793 4.2.3: keep the leading AS_PATH entries the
/// AS4_PATH does not cover, then append AS4_PATH. On a 4-octet session AS4_PATH is
/// ignored (RFC 6793 4.1).
fn merge_as4_path(
    path: AsPath,
    as4: Option<Vec<AsSegment>>,
    ctx: &SessionContext,
) -> Vec<AsSegment> {
    let base: Vec<AsSegment> = match path {
        AsPath::As4PathSegments(segs) => segs
            .iter()
            .map(|s| segment(s.segment_type(), s.as_numbers().to_vec()))
            .collect(),
        AsPath::As2PathSegments(segs) => segs
            .iter()
            .map(|s| {
                segment(
                    s.segment_type(),
                    s.as_numbers().iter().map(|n| u32::from(*n)).collect(),
                )
            })
            .collect(),
    };
    let Some(as4) = as4 else { return base };
    let has_trans = base
        .iter()
        .any(|s| matches!(s, AsSegment::Sequence(n) | AsSegment::Set(n) if n.contains(&u32::from(AS_TRANS))));
    if ctx.four_octet_as || !has_trans {
        return base;
    }
    let (total, total4) = (path_len(&base), path_len(&as4));
    if total4 > total {
        return base;
    }
    let mut keep = total - total4;
    let mut out = Vec::new();
    for seg in base {
        if keep == 0 {
            break;
        }
        match seg {
            AsSegment::Sequence(mut n) => {
                n.truncate(keep);
                keep -= n.len();
                out.push(AsSegment::Sequence(n));
            }
            set @ AsSegment::Set(_) => {
                keep -= 1;
                out.push(set);
            }
        }
    }
    // Join a trailing sequence with a leading AS4 sequence so the result is canonical.
    let mut as4 = as4.into_iter().peekable();
    if let Some(AsSegment::Sequence(last)) = out.last_mut()
        && let Some(AsSegment::Sequence(_)) = as4.peek()
        && let Some(AsSegment::Sequence(n)) = as4.next()
    {
        last.extend(n);
    }
    out.extend(as4);
    out
}
