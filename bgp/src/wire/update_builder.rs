//! UPDATE encoding: export rules, conversion to netgauze attributes, and packing of
//! many prefixes into as few UPDATEs as fit in 4096 bytes.
//!
//! netgauze writes the bytes. It neither checks the 4096-byte limit nor picks the
//! AS_PATH width, so this module does both: sizes are computed arithmetically per
//! prefix (an NLRI entry is `1 + ceil(len/8)` bytes) so that packing 100,000 prefixes
//! is a linear pass, and every built message is checked against the limit again.

use std::net::Ipv6Addr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::community::{
    Community, ExtendedCommunity as NgExtendedCommunity, LargeCommunity as NgLargeCommunity,
};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress};
use netgauze_bgp_pkt::path_attribute::{
    As2PathSegment, As4Path, As4PathSegment, AsPath, AsPathSegmentType, Communities,
    ExtendedCommunities, LargeCommunities, LocalPreference, MpReach, MpUnreach,
    MultiExitDiscriminator, NextHop as NgNextHop, Origin as NgOrigin, PathAttribute,
    PathAttributeValue,
};
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_parse_utils::WritablePdu;

use super::errors::EncodeError;
use super::ext_community;
use super::types::{
    AS_TRANS, AsSegment, MAX_MESSAGE_LEN, NextHop, Origin, PathAttributes, SessionContext, Update,
};

/// LOCAL_PREF sent to iBGP peers for routes that carry none (the common default of
/// BIRD, FRR and gobgpd).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Header (19) + withdrawn length (2) + total path attribute length (2).
const UPDATE_OVERHEAD: usize = 23;
/// AFI (2) + SAFI (1) in MP_UNREACH_NLRI; MP_REACH_NLRI adds next hop length (1),
/// next hop, reserved (1).
const MP_AFI_SAFI: usize = 3;
/// An AS_PATH segment holds at most 255 AS numbers.
const MAX_SEGMENT_LEN: usize = 255;

/// Bytes one prefix takes in an NLRI field.
pub(crate) fn nlri_len(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}

/// Attribute header size for a value of `value_len` bytes (extended length above 255).
fn attr_header(value_len: usize) -> usize {
    if value_len > 255 { 4 } else { 3 }
}

fn codec_err(e: impl std::fmt::Display) -> EncodeError {
    EncodeError::Codec(e.to_string())
}

/// Builds a path attribute with the well-known/optional flags of its type; sets the
/// extended-length flag only when the value needs it (netgauze writes a 2-byte length
/// for long values but leaves the flag to the caller).
fn make_attr(
    optional: bool,
    transitive: bool,
    value: PathAttributeValue,
) -> Result<PathAttribute, EncodeError> {
    let attr = PathAttribute::from(optional, transitive, false, false, value)
        .map_err(|(_, e)| codec_err(e))?;
    if attr.len() - 3 > 255 {
        let value = attr.value().clone();
        PathAttribute::from(optional, transitive, false, true, value).map_err(|(_, e)| codec_err(e))
    } else {
        Ok(attr)
    }
}

/// The AS_PATH as exported: our AS prepended on eBGP sessions (RFC 4271 5.1.2).
fn exported_as_path(attrs: &PathAttributes, ctx: &SessionContext) -> Vec<AsSegment> {
    let mut path = attrs.as_path.clone();
    if !ctx.is_ibgp() {
        match path.first_mut() {
            Some(AsSegment::Sequence(seq)) if seq.len() < MAX_SEGMENT_LEN => {
                seq.insert(0, ctx.local_as)
            }
            _ => path.insert(0, AsSegment::Sequence(vec![ctx.local_as])),
        }
    }
    path
}

/// Splits segments longer than 255 AS numbers (the segment length is one octet).
fn split_segments(path: &[AsSegment]) -> Vec<(AsPathSegmentType, &[u32])> {
    let mut out = Vec::new();
    for seg in path {
        let (ty, nums) = match seg {
            AsSegment::Sequence(n) => (AsPathSegmentType::AsSequence, n.as_slice()),
            AsSegment::Set(n) => (AsPathSegmentType::AsSet, n.as_slice()),
        };
        for chunk in nums.chunks(MAX_SEGMENT_LEN) {
            out.push((ty, chunk));
        }
    }
    out
}

/// The attribute set shared by every UPDATE of one (attributes, next hop) group, minus
/// the NLRI-carrying MP attributes: `before_mp` has type codes below 14, `after_mp`
/// above 15, so that messages list attributes in ascending type order (RFC 4271 5).
pub(crate) struct AttrBlock {
    before_mp: Vec<PathAttribute>,
    after_mp: Vec<PathAttribute>,
    /// Encoded size of both lists.
    len: usize,
}

impl AttrBlock {
    /// Applies the export rules of `ctx` to `attrs` (see [`super::encode`]).
    pub(crate) fn build(
        attrs: &PathAttributes,
        next_hop: &NextHop,
        ctx: &SessionContext,
    ) -> Result<Self, EncodeError> {
        let mut before = Vec::with_capacity(7);
        let mut after = Vec::with_capacity(2);
        let origin = match attrs.origin {
            Origin::Igp => NgOrigin::IGP,
            Origin::Egp => NgOrigin::EGP,
            Origin::Incomplete => NgOrigin::Incomplete,
        };
        before.push(make_attr(false, true, PathAttributeValue::Origin(origin))?);

        let path = exported_as_path(attrs, ctx);
        let segments = split_segments(&path);
        let as_path = if ctx.four_octet_as {
            AsPath::As4PathSegments(
                segments
                    .iter()
                    .map(|(ty, nums)| As4PathSegment::new(*ty, nums.to_vec()))
                    .collect(),
            )
        } else {
            AsPath::As2PathSegments(
                segments
                    .iter()
                    .map(|(ty, nums)| {
                        let narrow: Vec<u16> = nums
                            .iter()
                            .map(|n| u16::try_from(*n).unwrap_or(AS_TRANS))
                            .collect();
                        As2PathSegment::new(*ty, narrow)
                    })
                    .collect(),
            )
        };
        before.push(make_attr(false, true, PathAttributeValue::AsPath(as_path))?);

        if let NextHop::V4(addr) = next_hop {
            before.push(make_attr(
                false,
                true,
                PathAttributeValue::NextHop(NgNextHop::new(*addr)),
            )?);
        }
        if let Some(med) = attrs.med {
            before.push(make_attr(
                true,
                false,
                PathAttributeValue::MultiExitDiscriminator(MultiExitDiscriminator::new(med)),
            )?);
        }
        if ctx.is_ibgp() {
            let pref = attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF);
            before.push(make_attr(
                false,
                true,
                PathAttributeValue::LocalPreference(LocalPreference::new(pref)),
            )?);
        }
        if !attrs.communities.is_empty() {
            let list: Vec<Community> = attrs
                .communities
                .iter()
                .map(|c| Community::new(*c))
                .collect();
            before.push(make_attr(
                true,
                true,
                PathAttributeValue::Communities(Communities::new(list)),
            )?);
        }
        // EXTENDED COMMUNITIES (type 16): optional transitive. RFC 4360 6: a
        // non-transitive community is removed before the route crosses an AS boundary,
        // so towards eBGP peers only the transitive ones go out (as FRR and BIRD do).
        let ext: Vec<NgExtendedCommunity> = attrs
            .ext_communities
            .iter()
            .filter(|c| ctx.is_ibgp() || c.is_transitive())
            .map(ext_community::to_netgauze)
            .collect::<Result<_, _>>()?;
        if !ext.is_empty() {
            after.push(make_attr(
                true,
                true,
                PathAttributeValue::ExtendedCommunities(ExtendedCommunities::new(ext)),
            )?);
        }
        // RFC 6793 4.2.2: towards a 2-octet peer, AS4_PATH carries the real numbers
        // whenever the AS_PATH had to use AS_TRANS.
        if !ctx.four_octet_as && path.iter().flat_map(seg_nums).any(|n| *n > 0xffff) {
            let as4 = As4Path::new(
                segments
                    .iter()
                    .map(|(ty, nums)| As4PathSegment::new(*ty, nums.to_vec()))
                    .collect::<Vec<_>>(),
            );
            after.push(make_attr(true, true, PathAttributeValue::As4Path(as4))?);
        }
        if !attrs.large_communities.is_empty() {
            let list: Vec<NgLargeCommunity> = attrs
                .large_communities
                .iter()
                .map(|c| NgLargeCommunity::new(c.global, c.local1, c.local2))
                .collect();
            after.push(make_attr(
                true,
                true,
                PathAttributeValue::LargeCommunities(LargeCommunities::new(list)),
            )?);
        }
        let len = before.iter().chain(after.iter()).map(|a| a.len()).sum();
        Ok(AttrBlock {
            before_mp: before,
            after_mp: after,
            len,
        })
    }
}

fn seg_nums(seg: &AsSegment) -> &Vec<u32> {
    match seg {
        AsSegment::Sequence(n) | AsSegment::Set(n) => n,
    }
}

fn v4_addr(prefix: &Ipv4Net) -> Result<Ipv4UnicastAddress, EncodeError> {
    let net = prefix.trunc();
    Ipv4Unicast::from_net(net)
        .map(Ipv4UnicastAddress::new_no_path_id)
        .map_err(|_| EncodeError::NotUnicast(IpNet::V4(net)))
}

fn v6_addr(prefix: &Ipv6Net) -> Result<Ipv6UnicastAddress, EncodeError> {
    let net = prefix.trunc();
    Ipv6Unicast::from_net(net)
        .map(|n| Ipv6UnicastAddress::new(None, n))
        .map_err(|_| EncodeError::NotUnicast(IpNet::V6(net)))
}

/// Size of an MP_REACH_NLRI attribute for IPv6 with `nlri_bytes` of NLRI.
fn mp_reach_len(next_hop_len: usize, nlri_bytes: usize) -> usize {
    let value = MP_AFI_SAFI + 1 + next_hop_len + 1 + nlri_bytes;
    attr_header(value) + value
}

/// Size of an MP_UNREACH_NLRI attribute with `nlri_bytes` of withdrawn NLRI.
fn mp_unreach_len(nlri_bytes: usize) -> usize {
    let value = MP_AFI_SAFI + nlri_bytes;
    attr_header(value) + value
}

/// The parts of one UPDATE before conversion to netgauze; every prefix list is
/// already checked for family.
#[derive(Default)]
struct Parts<'a> {
    withdrawn_v4: Vec<Ipv4Net>,
    withdrawn_v6: Vec<Ipv6Net>,
    /// Whether to send an MP_UNREACH_NLRI even when `withdrawn_v6` is empty (End-of-RIB).
    force_mp_unreach: bool,
    block: Option<&'a AttrBlock>,
    announced_v4: Vec<Ipv4Net>,
    mp_reach: Option<(Ipv6Addr, Option<Ipv6Addr>, Vec<Ipv6Net>)>,
}

/// Turns `parts` into bytes with netgauze and checks the 4096-byte limit.
fn write_update(parts: Parts<'_>) -> Result<Vec<u8>, EncodeError> {
    let withdrawn: Vec<Ipv4UnicastAddress> = parts
        .withdrawn_v4
        .iter()
        .map(v4_addr)
        .collect::<Result<_, _>>()?;
    let mut attrs: Vec<PathAttribute> = Vec::new();
    if let Some(block) = parts.block {
        attrs.extend(block.before_mp.iter().cloned());
    }
    if let Some((global, link_local, nlri)) = parts.mp_reach {
        let nlri: Vec<Ipv6UnicastAddress> = nlri.iter().map(v6_addr).collect::<Result<_, _>>()?;
        attrs.push(make_attr(
            true,
            false,
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                next_hop_global: global,
                next_hop_local: link_local,
                nlri: nlri.into_boxed_slice(),
            }),
        )?);
    }
    if !parts.withdrawn_v6.is_empty() || parts.force_mp_unreach {
        let nlri: Vec<Ipv6UnicastAddress> = parts
            .withdrawn_v6
            .iter()
            .map(v6_addr)
            .collect::<Result<_, _>>()?;
        attrs.push(make_attr(
            true,
            false,
            PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast {
                nlri: nlri.into_boxed_slice(),
            }),
        )?);
    }
    if let Some(block) = parts.block {
        attrs.extend(block.after_mp.iter().cloned());
    }
    let nlri: Vec<Ipv4UnicastAddress> = parts
        .announced_v4
        .iter()
        .map(v4_addr)
        .collect::<Result<_, _>>()?;
    let msg = BgpMessage::Update(BgpUpdateMessage::new(withdrawn, attrs, nlri));
    write_message(&msg)
}

/// Writes any netgauze message, refusing anything above 4096 bytes (netgauze would
/// wrap lengths above 65535 silently and never checks 4096 for UPDATEs).
pub(crate) fn write_message(msg: &BgpMessage) -> Result<Vec<u8>, EncodeError> {
    let len = msg.len();
    if len > MAX_MESSAGE_LEN {
        return Err(EncodeError::TooLong {
            len,
            limit: MAX_MESSAGE_LEN,
        });
    }
    let mut out = Vec::with_capacity(len);
    msg.write(&mut out).map_err(codec_err)?;
    Ok(out)
}

/// Splits prefixes by family.
fn split_families(prefixes: &[IpNet]) -> (Vec<Ipv4Net>, Vec<Ipv6Net>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for p in prefixes {
        match p {
            IpNet::V4(n) => v4.push(*n),
            IpNet::V6(n) => v6.push(*n),
        }
    }
    (v4, v6)
}

/// Checks that every prefix matches the next hop's family; IPv4 NLRI with an IPv6
/// next hop (RFC 8950) needs the extended next hop capability, which we do not offer.
fn check_family(next_hop: &NextHop, prefixes: &[IpNet]) -> Result<(), EncodeError> {
    for p in prefixes {
        let ok = matches!(
            (p, next_hop),
            (IpNet::V4(_), NextHop::V4(_)) | (IpNet::V6(_), NextHop::V6 { .. })
        );
        if !ok {
            return Err(EncodeError::NextHopFamily {
                prefix: *p,
                next_hop: *next_hop,
            });
        }
    }
    Ok(())
}

fn v4_only(prefixes: &[IpNet]) -> Vec<Ipv4Net> {
    prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V4(n) => Some(*n),
            IpNet::V6(_) => None,
        })
        .collect()
}

fn v6_only(prefixes: &[IpNet]) -> Vec<Ipv6Net> {
    prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V6(n) => Some(*n),
            IpNet::V4(_) => None,
        })
        .collect()
}

/// Encodes one [`Update`] as exactly one message (see [`super::encode`]).
pub(crate) fn encode_update(update: &Update, ctx: &SessionContext) -> Result<Vec<u8>, EncodeError> {
    let (withdrawn_v4, withdrawn_v6) = split_families(&update.withdrawn);
    let mut groups: Vec<(NextHop, &[IpNet])> = Vec::new();
    if !update.announced.is_empty() {
        let nh = update.next_hop.ok_or(EncodeError::Missing("next hop"))?;
        groups.push((nh, &update.announced));
    }
    for (nh, prefixes) in &update.extra_announced {
        if !prefixes.is_empty() {
            groups.push((*nh, prefixes));
        }
    }
    let mut parts = Parts {
        withdrawn_v4,
        withdrawn_v6,
        ..Parts::default()
    };
    let block;
    if !groups.is_empty() {
        let attrs = update
            .attributes
            .as_ref()
            .ok_or(EncodeError::Missing("path attributes"))?;
        for (nh, prefixes) in &groups {
            check_family(nh, prefixes)?;
        }
        let v4_group = groups.iter().find(|(nh, _)| matches!(nh, NextHop::V4(_)));
        let v6_group = groups
            .iter()
            .find(|(nh, _)| matches!(nh, NextHop::V6 { .. }));
        if groups.len() > 2 || (groups.len() == 2 && (v4_group.is_none() || v6_group.is_none())) {
            return Err(EncodeError::Codec(
                "one UPDATE carries at most one IPv4 and one IPv6 next hop".into(),
            ));
        }
        let block_nh = v4_group.map(|g| g.0).unwrap_or(groups[0].0);
        block = AttrBlock::build(attrs, &block_nh, ctx)?;
        parts.block = Some(&block);
        if let Some((_, prefixes)) = v4_group {
            parts.announced_v4 = v4_only(prefixes);
        }
        if let Some((NextHop::V6 { global, link_local }, prefixes)) = v6_group {
            parts.mp_reach = Some((*global, *link_local, v6_only(prefixes)));
        }
    }
    write_update(parts)
}

/// The RFC 4724 End-of-RIB marker for IPv6 unicast: an UPDATE whose only attribute is
/// an empty MP_UNREACH_NLRI.
pub(crate) fn encode_end_of_rib_v6() -> Result<Vec<u8>, EncodeError> {
    write_update(Parts {
        force_mp_unreach: true,
        ..Parts::default()
    })
}

/// Packs withdrawals and announcements into as few UPDATEs as fit in 4096 bytes each.
///
/// Withdrawals come first (IPv4 in the classic field, IPv6 in MP_UNREACH_NLRI, in
/// separate messages), then one run of messages per (attributes, next hop) group,
/// each message filled with as many prefixes as fit. Export rules as in
/// [`super::encode`]. Returns the encoded messages in sending order.
pub fn pack_updates(
    ctx: &SessionContext,
    withdrawn: &[IpNet],
    announced: &[(PathAttributes, NextHop, Vec<IpNet>)],
) -> Result<Vec<Vec<u8>>, EncodeError> {
    pack_updates_iter(
        ctx,
        withdrawn,
        announced.iter().map(|(a, nh, p)| (a, nh, p.as_slice())),
    )
}

/// [`pack_updates`] over borrowed groups (lets the RIB avoid copying prefix lists).
pub(crate) fn pack_updates_iter<'a>(
    ctx: &SessionContext,
    withdrawn: &[IpNet],
    announced: impl Iterator<Item = (&'a PathAttributes, &'a NextHop, &'a [IpNet])>,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let mut out = Vec::new();
    let (w4, w6) = split_families(withdrawn);
    for chunk in chunk_by_size(&w4, MAX_MESSAGE_LEN - UPDATE_OVERHEAD, |p| {
        nlri_len(&IpNet::V4(*p))
    }) {
        out.push(write_update(Parts {
            withdrawn_v4: chunk.to_vec(),
            ..Parts::default()
        })?);
    }
    if !w6.is_empty() {
        let mut start = 0;
        while start < w6.len() {
            let mut bytes = 0;
            let mut end = start;
            while end < w6.len() {
                let add = nlri_len(&IpNet::V6(w6[end]));
                if UPDATE_OVERHEAD + mp_unreach_len(bytes + add) > MAX_MESSAGE_LEN {
                    break;
                }
                bytes += add;
                end += 1;
            }
            out.push(write_update(Parts {
                withdrawn_v6: w6[start..end].to_vec(),
                ..Parts::default()
            })?);
            start = end;
        }
    }
    for (attrs, next_hop, prefixes) in announced {
        if prefixes.is_empty() {
            continue;
        }
        check_family(next_hop, prefixes)?;
        let block = AttrBlock::build(attrs, next_hop, ctx)?;
        let fixed = UPDATE_OVERHEAD + block.len;
        match next_hop {
            NextHop::V4(_) => {
                let v4 = v4_only(prefixes);
                let room = MAX_MESSAGE_LEN.checked_sub(fixed).filter(|r| *r >= 5);
                let room = room.ok_or(EncodeError::AttributesTooLarge { len: fixed })?;
                for chunk in chunk_by_size(&v4, room, |p| nlri_len(&IpNet::V4(*p))) {
                    out.push(write_update(Parts {
                        block: Some(&block),
                        announced_v4: chunk.to_vec(),
                        ..Parts::default()
                    })?);
                }
            }
            NextHop::V6 { global, link_local } => {
                let v6 = v6_only(prefixes);
                let nh_len = if link_local.is_some() { 32 } else { 16 };
                if fixed + mp_reach_len(nh_len, 17) > MAX_MESSAGE_LEN {
                    return Err(EncodeError::AttributesTooLarge { len: fixed });
                }
                let mut start = 0;
                while start < v6.len() {
                    let mut bytes = 0;
                    let mut end = start;
                    while end < v6.len() {
                        let add = nlri_len(&IpNet::V6(v6[end]));
                        if fixed + mp_reach_len(nh_len, bytes + add) > MAX_MESSAGE_LEN {
                            break;
                        }
                        bytes += add;
                        end += 1;
                    }
                    out.push(write_update(Parts {
                        block: Some(&block),
                        mp_reach: Some((*global, *link_local, v6[start..end].to_vec())),
                        ..Parts::default()
                    })?);
                    start = end;
                }
            }
        }
    }
    Ok(out)
}

/// Splits `items` into consecutive chunks whose summed `size` stays within `room`.
/// Every item is at most 17 bytes and `room` is larger, so no chunk is empty.
fn chunk_by_size<T>(items: &[T], room: usize, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, item) in items.iter().enumerate() {
        let s = size(item);
        if used + s > room && i > start {
            chunks.push(&items[start..i]);
            start = i;
            used = 0;
        }
        used += s;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}
