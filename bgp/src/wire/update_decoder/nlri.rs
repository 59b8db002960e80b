//! The prefixes of an UPDATE: the IPv4 withdrawn routes and NLRI fields, and the prefix
//! lists (with their next hop) of MP_REACH_NLRI and MP_UNREACH_NLRI.

use ipnet::{IpNet, Ipv4Net};
use netgauze_bgp_pkt::path_attribute::{MpReach, MpUnreach};
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFrom;

use super::{Collected, reset};
use crate::wire::errors::{DecodeError, codes};
use crate::wire::types::{AddressFamily, NextHop};

/// Parses an IPv4 prefix list (withdrawn routes or NLRI) with netgauze's prefix parser.
pub(super) fn parse_v4_prefixes(bytes: &[u8], what: &str) -> Result<Vec<IpNet>, DecodeError> {
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

pub(super) fn mp_reach(mp: &MpReach, raw: &[u8], c: &mut Collected) -> Result<(), DecodeError> {
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

pub(super) fn mp_unreach(mp: &MpUnreach, raw: &[u8], c: &mut Collected) -> Result<(), DecodeError> {
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
