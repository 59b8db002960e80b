//! Extended communities (RFC 4360) between our [`ExtendedCommunity`] and netgauze's.
//!
//! netgauze models every community type; we keep the eight octets (and a typed link
//! bandwidth), so the conversions go through netgauze's own reader and writer: whatever
//! netgauze parses, it writes back unchanged, and we never hand-encode the attribute.

use netgauze_bgp_pkt::community::{
    ExtendedCommunity as NgExtendedCommunity, NonTransitiveTwoOctetExtendedCommunity,
    TransitiveTwoOctetExtendedCommunity,
};
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFrom;

use super::errors::EncodeError;
use super::types::{ExtendedCommunity, LINK_BANDWIDTH_SUBTYPE};

/// Our community as netgauze's. The link bandwidth is built from netgauze's types
/// (non-transitive: its `LinkBandwidth`; transitive: netgauze has no name for subtype
/// 0x04 of type 0x00 and keeps it as `Unassigned`); any other community is parsed from
/// its eight octets by netgauze.
pub(crate) fn to_netgauze(c: &ExtendedCommunity) -> Result<NgExtendedCommunity, EncodeError> {
    if let ExtendedCommunity::LinkBandwidth(lb) = c {
        let local_admin = lb.bytes_per_second().to_bits();
        return Ok(if lb.transitive {
            NgExtendedCommunity::TransitiveTwoOctet(
                TransitiveTwoOctetExtendedCommunity::Unassigned {
                    sub_type: LINK_BANDWIDTH_SUBTYPE,
                    global_admin: lb.asn,
                    local_admin,
                },
            )
        } else {
            NgExtendedCommunity::NonTransitiveTwoOctet(
                NonTransitiveTwoOctetExtendedCommunity::LinkBandwidth {
                    global_admin: lb.asn,
                    local_admin,
                },
            )
        });
    }
    let bytes = c.to_bytes();
    NgExtendedCommunity::parse(&mut SliceReader::new(&bytes))
        .map_err(|e| EncodeError::Codec(format!("extended community {bytes:02x?}: {e}")))
}

/// netgauze's community as ours (written by netgauze, then read as eight octets).
pub(crate) fn from_netgauze(c: &NgExtendedCommunity) -> Option<ExtendedCommunity> {
    let mut out = Vec::with_capacity(8);
    c.write(&mut out).ok()?;
    let bytes: [u8; 8] = out.try_into().ok()?;
    Some(ExtendedCommunity::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::LinkBandwidth;

    #[test]
    fn link_bandwidth_both_ways_through_netgauze() {
        for transitive in [true, false] {
            let lb = LinkBandwidth::from_mbps(64522, 100.0, transitive).unwrap();
            assert_eq!(lb.bytes_per_second(), 12_500_000.0);
            let ours = ExtendedCommunity::LinkBandwidth(lb);
            let ng = to_netgauze(&ours).unwrap();
            let back = from_netgauze(&ng).unwrap();
            assert_eq!(back, ours);
            let ty = if transitive { 0x00 } else { 0x40 };
            // 64522 = 0xfc0a; 12,500,000.0 = 0x4b3ebc20 (IEEE 754).
            assert_eq!(
                back.to_bytes(),
                [ty, 0x04, 0xfc, 0x0a, 0x4b, 0x3e, 0xbc, 0x20]
            );
            assert_eq!(back.is_transitive(), transitive);
        }
    }

    #[test]
    fn other_communities_round_trip_unchanged() {
        // Route target 64512:100 (0x0002), an opaque one, an unknown type, an IPv4 one.
        for bytes in [
            [0x00, 0x02, 0xfc, 0x00, 0, 0, 0, 100],
            [0x43, 0x0c, 1, 2, 3, 4, 5, 6],
            [0x8f, 0x01, 9, 9, 9, 9, 9, 9],
            [0x01, 0x03, 10, 0, 0, 1, 0, 7],
        ] {
            let c = ExtendedCommunity::from_bytes(bytes);
            assert!(matches!(c, ExtendedCommunity::Other(_)), "{c:?}");
            let ng = to_netgauze(&c).unwrap();
            assert_eq!(from_netgauze(&ng), Some(c), "{bytes:02x?}");
        }
    }

    #[test]
    fn bandwidth_must_be_a_finite_non_negative_number() {
        assert!(LinkBandwidth::new(1, f32::NAN, true).is_none());
        assert!(LinkBandwidth::new(1, f32::INFINITY, true).is_none());
        assert!(LinkBandwidth::new(1, -1.0, true).is_none());
        let zero = LinkBandwidth::new(1, -0.0, true).unwrap();
        assert_eq!(
            zero.bytes_per_second().to_bits(),
            0,
            "-0.0 is stored as 0.0"
        );
    }
}
