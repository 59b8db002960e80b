//! ROUTE-REFRESH coalescing (RFC 2918): any number of requests for a family while a
//! resend of it is still being written cost one more resend, not one each.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::wire::AddressFamily;

/// Shortest time between the starts of two resends of one family, so that a peer
/// asking in a loop gets at most one full table per interval.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct State {
    running: bool,
    again: bool,
}

/// Per-family resend state of one session.
#[derive(Debug, Default)]
pub(crate) struct Refreshes {
    families: BTreeMap<AddressFamily, State>,
}

impl Refreshes {
    /// A request arrived; true when a resend should start now.
    pub(crate) fn request(&mut self, family: AddressFamily) -> bool {
        let st = self.families.entry(family).or_default();
        if st.running {
            st.again = true;
            return false;
        }
        st.running = true;
        true
    }

    /// The running resend was written; true when another one was asked for meanwhile
    /// (it starts now and counts as running).
    pub(crate) fn done(&mut self, family: AddressFamily) -> bool {
        let st = self.families.entry(family).or_default();
        if st.again {
            st.again = false;
            st.running = true;
            return true;
        }
        st.running = false;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_during_a_resend_cost_one_more() {
        let v4 = AddressFamily::Ipv4Unicast;
        let v6 = AddressFamily::Ipv6Unicast;
        let mut r = Refreshes::default();
        assert!(r.request(v4), "first request starts a resend");
        for _ in 0..10_000 {
            assert!(!r.request(v4), "while running: coalesced");
        }
        assert!(r.request(v6), "families are independent");
        assert!(r.done(v4), "one more resend for all of them");
        assert!(!r.done(v4), "nothing asked during the second");
        assert!(r.request(v4), "idle again");
    }
}
