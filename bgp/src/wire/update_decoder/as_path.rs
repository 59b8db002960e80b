//! AS_PATH and AS4_PATH: netgauze's segments as ours, and the RFC 6793 merge of the two on
//! a session without 4-octet AS numbers.

use netgauze_bgp_pkt::path_attribute::{AsPath, AsPathSegmentType};

use crate::wire::types::{AS_TRANS, AsSegment, SessionContext};

/// Our segment for a netgauze segment type (netgauze rejects confederation segments,
/// which makes the AS_PATH malformed: treat-as-withdraw).
pub(super) fn segment(ty: AsPathSegmentType, nums: Vec<u32>) -> AsSegment {
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
pub(super) fn merge_as4_path(
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
