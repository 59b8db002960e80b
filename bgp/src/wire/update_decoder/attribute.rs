//! One path attribute of an UPDATE: duplicates, the MP family and length checks netgauze
//! does not make, parsing with netgauze, the RFC 7606 outcome when that fails, and what the
//! parsed value contributes to the [`Collected`] attributes.

use netgauze_bgp_pkt::path_attribute::{PathAttribute, PathAttributeValue};
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

use super::as_path::segment;
use super::nlri::{mp_reach, mp_unreach};
use super::rfc7606::{OnError, on_error};
use super::{
    AS_PATH, COMMUNITIES, Collected, FLAG_OPTIONAL, LARGE_COMMUNITIES, MP_REACH, MP_UNREACH,
    NEXT_HOP, ORIGIN, reset,
};
use crate::wire::errors::{DecodeError, ErrorAction, codes};
use crate::wire::types::{LargeCommunity, Origin, SessionContext};

/// Handles one complete attribute (`raw` = header + value).
#[allow(clippy::too_many_arguments)]
pub(super) fn handle_attribute(
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
                .filter_map(super::super::ext_community::from_netgauze)
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
