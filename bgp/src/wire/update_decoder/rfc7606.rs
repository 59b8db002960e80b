//! The RFC 7606 decisions: what a malformed attribute of each type costs (treat-as-withdraw,
//! attribute-discard or session reset), and what an attribute overrunning the list costs.

use super::{
    AS_PATH, CLUSTER_LIST, COMMUNITIES, Collected, EXT_COMMUNITIES, LARGE_COMMUNITIES, LOCAL_PREF,
    MED, MP_REACH, MP_UNREACH, NEXT_HOP, ORIGIN, ORIGINATOR_ID, reset,
};
use crate::wire::errors::{DecodeError, ErrorAction, codes};
use crate::wire::types::SessionContext;

/// What RFC 7606 says to do when an attribute of this type is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnError {
    TreatAsWithdraw,
    Discard,
    Reset,
}

pub(super) fn on_error(type_code: u8, ctx: &SessionContext) -> OnError {
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

/// RFC 7606 section 4: an attribute that overruns the attribute list (or a header cut
/// short by it) means treat-as-withdraw, the Total Path Attribute Length locating the
/// NLRI. The "more severe error" exception: an overrunning MP_REACH_NLRI or
/// MP_UNREACH_NLRI hides NLRI we cannot read, so that still resets the session.
pub(super) fn overrun(
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
