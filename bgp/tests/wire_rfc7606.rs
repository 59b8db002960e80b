//! Hand-made malformed messages: each RFC 7606 / RFC 4271 decision of the decoder.

use std::net::Ipv4Addr;

use ferrolb_bgp::wire::{
    AddressFamily, AsSegment, Decoded, ErrorAction, Message, NextHop, SessionContext, Update,
    decode, message_length,
};
use ipnet::IpNet;

fn ctx(four: bool, local_as: u32, peer_as: u32) -> SessionContext {
    SessionContext {
        four_octet_as: four,
        families: vec![AddressFamily::Ipv4Unicast, AddressFamily::Ipv6Unicast],
        route_refresh: true,
        local_as,
        peer_as,
        graceful_restart: None,
    }
}

fn ebgp() -> SessionContext {
    ctx(true, 64512, 65000)
}

fn ibgp() -> SessionContext {
    ctx(true, 64512, 64512)
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn frame(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    out.push(msg_type);
    out.extend_from_slice(body);
    out
}

fn attr(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, type_code];
    if flags & 0x10 != 0 {
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.push(value.len() as u8);
    }
    out.extend_from_slice(value);
    out
}

fn update(withdrawn: &[u8], attrs: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs.concat();
    let mut body = Vec::new();
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(nlri);
    frame(2, &body)
}

fn origin() -> Vec<u8> {
    attr(0x40, 1, &[0])
}
fn as_path_65000() -> Vec<u8> {
    attr(0x40, 2, &[2, 1, 0, 0, 0xfd, 0xe8])
}
fn next_hop() -> Vec<u8> {
    attr(0x40, 3, &[192, 0, 2, 1])
}
/// NLRI 198.51.100.0/24 and 203.0.113.7/32.
const NLRI: [u8; 9] = [24, 198, 51, 100, 32, 203, 0, 113, 7];

fn nlri_prefixes() -> Vec<IpNet> {
    vec![net("198.51.100.0/24"), net("203.0.113.7/32")]
}

fn good_attrs() -> Vec<Vec<u8>> {
    vec![origin(), as_path_65000(), next_hop()]
}

fn decoded_update(d: &Decoded) -> &Update {
    match &d.message {
        Message::Update(u) => u,
        other => panic!("expected UPDATE, got {other:?}"),
    }
}

/// Asserts treat-as-withdraw: nothing announced, the NLRI withdrawn, one action.
fn assert_treat_as_withdraw(d: &Decoded, type_code: Option<u8>, withdrawn: &[IpNet]) {
    let u = decoded_update(d);
    assert!(u.announced.is_empty(), "{u:?}");
    assert!(u.attributes.is_none());
    assert_eq!(u.withdrawn, withdrawn);
    assert!(
        d.actions.iter().any(
            |a| matches!(a, ErrorAction::TreatAsWithdraw { type_code: t, .. } if *t == type_code)
        ),
        "{:?}",
        d.actions
    );
}

fn assert_discard_and_kept(d: &Decoded, type_code: u8) -> &Update {
    let u = decoded_update(d);
    assert_eq!(u.announced, nlri_prefixes(), "route must be kept: {d:?}");
    assert!(u.attributes.is_some());
    assert!(
        d.actions.iter().any(
            |a| matches!(a, ErrorAction::AttributeDiscard { type_code: t, .. } if *t == type_code)
        ),
        "{:?}",
        d.actions
    );
    u
}

fn assert_reset(frame: &[u8], c: &SessionContext, code: u8, subcode: u8) {
    let err = decode(frame, c).expect_err("must reset the session");
    assert_eq!(
        (err.notification.code, err.notification.subcode),
        (code, subcode),
        "{err}"
    );
}

#[test]
fn well_formed_update_is_accepted() {
    let d = decode(&update(&[], &good_attrs(), &NLRI), &ebgp()).unwrap();
    assert!(d.actions.is_empty());
    let u = decoded_update(&d);
    assert_eq!(u.announced, nlri_prefixes());
    assert_eq!(u.next_hop, Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))));
    assert_eq!(
        u.attributes.as_ref().unwrap().as_path,
        vec![AsSegment::Sequence(vec![65000])]
    );
}

#[test]
fn bad_origin_length_or_value_is_treat_as_withdraw() {
    for bad in [attr(0x40, 1, &[0, 0]), attr(0x40, 1, &[7])] {
        let msg = update(&[], &[bad, as_path_65000(), next_hop()], &NLRI);
        let d = decode(&msg, &ebgp()).unwrap();
        assert_treat_as_withdraw(&d, Some(1), &nlri_prefixes());
    }
}

#[test]
fn malformed_as_path_is_treat_as_withdraw() {
    let cases = [
        attr(0x40, 2, &[2, 2, 0, 0, 0xfd, 0xe8]), // segment overruns
        attr(0x40, 2, &[2, 0]),                   // zero-length segment
        attr(0x40, 2, &[9, 1, 0, 0, 0xfd, 0xe8]), // unknown segment type
        attr(0x40, 2, &[2, 1, 0, 0, 0xfd, 0xe8, 0x1]), // trailing byte
    ];
    for bad in cases {
        let msg = update(&[], &[origin(), bad, next_hop()], &NLRI);
        let d = decode(&msg, &ebgp()).unwrap();
        assert_treat_as_withdraw(&d, Some(2), &nlri_prefixes());
    }
}

#[test]
fn bad_next_hop_and_med_length_are_treat_as_withdraw() {
    let msg = update(
        &[],
        &[origin(), as_path_65000(), attr(0x40, 3, &[1, 2, 3, 4, 5])],
        &NLRI,
    );
    assert_treat_as_withdraw(&decode(&msg, &ebgp()).unwrap(), Some(3), &nlri_prefixes());

    let mut attrs = good_attrs();
    attrs.push(attr(0x80, 4, &[0, 0, 1]));
    let msg = update(&[], &attrs, &NLRI);
    assert_treat_as_withdraw(&decode(&msg, &ebgp()).unwrap(), Some(4), &nlri_prefixes());
}

#[test]
fn bad_local_pref_is_treat_as_withdraw_on_ibgp_and_discarded_on_ebgp() {
    let mut attrs = vec![origin(), attr(0x40, 2, &[]), next_hop()];
    attrs.push(attr(0x40, 5, &[0, 100]));
    let msg = update(&[], &attrs, &NLRI);
    assert_treat_as_withdraw(&decode(&msg, &ibgp()).unwrap(), Some(5), &nlri_prefixes());
    let d = decode(&msg, &ebgp()).unwrap();
    let u = assert_discard_and_kept(&d, 5);
    assert_eq!(u.attributes.as_ref().unwrap().local_pref, None);
}

#[test]
fn local_pref_from_ebgp_is_ignored_and_kept_from_ibgp() {
    let mut attrs = good_attrs();
    attrs.push(attr(0x40, 5, &[0, 0, 0, 200]));
    let msg = update(&[], &attrs, &NLRI);
    let d = decode(&msg, &ebgp()).unwrap();
    assert!(d.actions.is_empty());
    assert_eq!(
        decoded_update(&d).attributes.as_ref().unwrap().local_pref,
        None
    );
    let d = decode(&msg, &ibgp()).unwrap();
    assert_eq!(
        decoded_update(&d).attributes.as_ref().unwrap().local_pref,
        Some(200)
    );
}

#[test]
fn bad_communities_length_is_treat_as_withdraw() {
    for value in [&[0u8, 1, 0, 2, 3][..], &[]] {
        let mut attrs = good_attrs();
        attrs.push(attr(0xc0, 8, value));
        let msg = update(&[], &attrs, &NLRI);
        assert_treat_as_withdraw(&decode(&msg, &ebgp()).unwrap(), Some(8), &nlri_prefixes());
    }
}

#[test]
fn bad_large_communities_length_is_treat_as_withdraw() {
    for value in [&[0u8; 13][..], &[0u8; 0], &[0u8; 24][..23]] {
        let mut attrs = good_attrs();
        attrs.push(attr(0xc0, 32, value));
        let msg = update(&[], &attrs, &NLRI);
        assert_treat_as_withdraw(&decode(&msg, &ebgp()).unwrap(), Some(32), &nlri_prefixes());
    }
}

#[test]
fn bad_aggregator_and_atomic_aggregate_are_discarded() {
    let mut attrs = good_attrs();
    attrs.push(attr(0xc0, 7, &[0, 1, 2]));
    let d = decode(&update(&[], &attrs, &NLRI), &ebgp()).unwrap();
    assert_discard_and_kept(&d, 7);

    let mut attrs = good_attrs();
    attrs.push(attr(0x40, 6, &[1]));
    let d = decode(&update(&[], &attrs, &NLRI), &ebgp()).unwrap();
    assert_discard_and_kept(&d, 6);
}

#[test]
fn bad_as4_path_is_discarded_on_two_octet_session() {
    let c = ctx(false, 64512, 65000);
    let mut attrs = vec![origin(), attr(0x40, 2, &[2, 1, 0xfd, 0xe8]), next_hop()];
    attrs.push(attr(0xc0, 17, &[2, 3, 0, 0, 0, 1]));
    let d = decode(&update(&[], &attrs, &NLRI), &c).unwrap();
    let u = assert_discard_and_kept(&d, 17);
    assert_eq!(
        u.attributes.as_ref().unwrap().as_path,
        vec![AsSegment::Sequence(vec![65000])]
    );
}

#[test]
fn as4_path_is_merged_on_two_octet_session() {
    let c = ctx(false, 64512, 65000);
    // AS_PATH 65000 23456, AS4_PATH 4200000001.
    let as_path = attr(0x40, 2, &[2, 2, 0xfd, 0xe8, 0x5b, 0xa0]);
    let as4 = attr(0xc0, 17, &[2, 1, 0xfa, 0x56, 0xea, 0x01]);
    let d = decode(
        &update(&[], &[origin(), as_path, next_hop(), as4], &NLRI),
        &c,
    )
    .unwrap();
    assert!(d.actions.is_empty());
    assert_eq!(
        decoded_update(&d).attributes.as_ref().unwrap().as_path,
        vec![AsSegment::Sequence(vec![65000, 4_200_000_001])]
    );
}

#[test]
fn missing_mandatory_attribute_with_nlri_is_treat_as_withdraw() {
    for skip in 0..3 {
        let attrs: Vec<Vec<u8>> = good_attrs()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, a)| a)
            .collect();
        let d = decode(&update(&[], &attrs, &NLRI), &ebgp()).unwrap();
        assert_treat_as_withdraw(&d, None, &nlri_prefixes());
    }
    // A pure withdrawal needs no attributes at all.
    let d = decode(&update(&NLRI, &[], &[]), &ebgp()).unwrap();
    assert!(d.actions.is_empty());
    assert_eq!(decoded_update(&d).withdrawn, nlri_prefixes());
}

#[test]
fn attribute_flag_conflict_is_treated_as_malformed() {
    // ORIGIN sent as optional: treat-as-withdraw (RFC 7606 3(c)).
    let msg = update(
        &[],
        &[attr(0xc0, 1, &[0]), as_path_65000(), next_hop()],
        &NLRI,
    );
    assert_treat_as_withdraw(&decode(&msg, &ebgp()).unwrap(), Some(1), &nlri_prefixes());
}

#[test]
fn repeated_attribute_keeps_the_first() {
    let mut attrs = good_attrs();
    attrs.push(attr(0x80, 4, &[0, 0, 0, 7]));
    attrs.push(attr(0x80, 4, &[0, 0, 0, 9]));
    let d = decode(&update(&[], &attrs, &NLRI), &ebgp()).unwrap();
    let u = assert_discard_and_kept(&d, 4);
    assert_eq!(u.attributes.as_ref().unwrap().med, Some(7));
}

fn mp_reach_v6(next_hop_len: u8, nh: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, next_hop_len];
    v.extend_from_slice(nh);
    v.push(0);
    v.extend_from_slice(nlri);
    attr(0x80, 14, &v)
}

fn v6_global() -> [u8; 16] {
    "2001:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets()
}

/// 2001:db8:1::/48
const V6_NLRI: [u8; 7] = [48, 0x20, 0x01, 0x0d, 0xb8, 0, 1];

#[test]
fn treat_as_withdraw_also_withdraws_mp_reach_prefixes() {
    let attrs = vec![
        attr(0x40, 1, &[9]),
        as_path_65000(),
        mp_reach_v6(16, &v6_global(), &V6_NLRI),
    ];
    let d = decode(&update(&[], &attrs, &[]), &ebgp()).unwrap();
    assert_treat_as_withdraw(&d, Some(1), &[net("2001:db8:1::/48")]);
}

#[test]
fn mp_reach_v6_without_next_hop_attribute_is_fine() {
    let attrs = vec![
        origin(),
        as_path_65000(),
        mp_reach_v6(16, &v6_global(), &V6_NLRI),
    ];
    let d = decode(&update(&[], &attrs, &[]), &ebgp()).unwrap();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    let u = decoded_update(&d);
    assert_eq!(u.announced, vec![net("2001:db8:1::/48")]);
    assert_eq!(
        u.next_hop,
        Some(NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: None
        })
    );
}

#[test]
fn broken_mp_reach_resets_the_session() {
    // Next hop length 20 is not 16 or 32.
    let attrs = vec![
        origin(),
        as_path_65000(),
        mp_reach_v6(20, &[0; 20], &V6_NLRI),
    ];
    assert_reset(&update(&[], &attrs, &[]), &ebgp(), 3, 9);
    // NLRI prefix length 129.
    let attrs = vec![
        origin(),
        as_path_65000(),
        mp_reach_v6(16, &v6_global(), &[129, 0x20, 0x01]),
    ];
    assert_reset(&update(&[], &attrs, &[]), &ebgp(), 3, 9);
    // Too short for AFI/SAFI.
    let attrs = vec![origin(), as_path_65000(), attr(0x80, 14, &[0, 2])];
    assert_reset(&update(&[], &attrs, &[]), &ebgp(), 3, 9);
    // Broken MP_UNREACH.
    let attrs = vec![attr(0x80, 15, &[0, 2, 1, 64, 0x20])];
    assert_reset(&update(&[], &attrs, &[]), &ebgp(), 3, 9);
}

#[test]
fn repeated_mp_reach_resets_the_session() {
    let attrs = vec![
        origin(),
        as_path_65000(),
        mp_reach_v6(16, &v6_global(), &V6_NLRI),
        mp_reach_v6(16, &v6_global(), &V6_NLRI),
    ];
    assert_reset(&update(&[], &attrs, &[]), &ebgp(), 3, 1);
}

#[test]
fn mp_reach_for_another_family_is_ignored() {
    // AFI 25 (L2VPN) SAFI 70 (EVPN): not ours, ignored; the IPv4 part still counts.
    let mut attrs = good_attrs();
    attrs.push(attr(0x80, 14, &[0, 25, 70, 4, 1, 2, 3, 4, 0, 1, 2]));
    let d = decode(&update(&[], &attrs, &NLRI), &ebgp()).unwrap();
    assert!(matches!(d.actions[0], ErrorAction::Ignored { .. }));
    assert_eq!(decoded_update(&d).announced, nlri_prefixes());
}

/// RFC 7606 section 4: an attribute overrunning the Total Path Attribute Length (or a
/// header cut short by it) is treat-as-withdraw; the total length still locates the NLRI.
#[test]
fn attribute_overrunning_the_list_is_treat_as_withdraw() {
    let mut msg = update(&[24, 192, 0, 2], &good_attrs(), &NLRI);
    // The NEXT_HOP length byte (last attribute) claims 20 bytes.
    let at = msg.len() - NLRI.len() - 5;
    assert_eq!(msg[at], 4);
    msg[at] = 20;
    let d = decode(&msg, &ebgp()).expect("treat-as-withdraw, not a reset");
    let mut want = vec![net("192.0.2.0/24")];
    want.extend(nlri_prefixes());
    assert_treat_as_withdraw(&d, Some(3), &want);

    // Truncated attribute header (fewer than 3 bytes left): the same.
    let attrs = vec![origin(), as_path_65000(), next_hop(), vec![0x40, 8]];
    let d = decode(&update(&[], &attrs, &NLRI), &ebgp()).expect("treat-as-withdraw");
    assert_treat_as_withdraw(&d, Some(8), &nlri_prefixes());

    // An overrunning MP_REACH_NLRI hides NLRI we cannot read: still a reset.
    let mut mp = attr(0x80, 14, &[0, 2, 1, 16]);
    mp[2] = 40;
    let attrs = vec![origin(), as_path_65000(), mp];
    assert_reset(&update(&[], &attrs, &[]), &ebgp(), 3, 1);
}

#[test]
fn bad_withdrawn_or_attribute_list_length_resets_the_session() {
    let mut msg = update(&[], &good_attrs(), &NLRI);
    msg[19] = 0x10; // withdrawn length 4096+
    assert_reset(&msg, &ebgp(), 3, 1);
    let mut msg = update(&[], &good_attrs(), &NLRI);
    msg[22] = 0xff; // total attribute length 255+ overruns
    assert_reset(&msg, &ebgp(), 3, 1);
}

#[test]
fn invalid_nlri_resets_with_invalid_network_field() {
    assert_reset(
        &update(&[], &good_attrs(), &[33, 1, 2, 3, 4, 5]),
        &ebgp(),
        3,
        10,
    );
    assert_reset(&update(&[], &good_attrs(), &[24, 1, 2]), &ebgp(), 3, 10);
    assert_reset(&update(&[40, 1, 2, 3, 4, 5], &[], &[]), &ebgp(), 3, 10);
}

#[test]
fn unrecognized_well_known_attribute_resets_and_unknown_optional_is_accepted() {
    let mut attrs = good_attrs();
    attrs.push(attr(0x40, 99, &[1, 2, 3]));
    assert_reset(&update(&[], &attrs, &NLRI), &ebgp(), 3, 2);

    let mut attrs = good_attrs();
    attrs.push(attr(0xc0, 99, &[1, 2, 3]));
    let d = decode(&update(&[], &attrs, &NLRI), &ebgp()).unwrap();
    assert!(d.actions.is_empty());
    assert_eq!(decoded_update(&d).announced, nlri_prefixes());
}

#[test]
fn end_of_rib_markers_decode_as_such() {
    let d = decode(&update(&[], &[], &[]), &ebgp()).unwrap();
    assert_eq!(d.message, Message::EndOfRib(AddressFamily::Ipv4Unicast));
    let d = decode(&update(&[], &[attr(0x80, 15, &[0, 2, 1])], &[]), &ebgp()).unwrap();
    assert_eq!(d.message, Message::EndOfRib(AddressFamily::Ipv6Unicast));
}

#[test]
fn header_errors_carry_the_right_notification() {
    let ka = frame(4, &[]);
    assert_eq!(message_length(&ka[..18]).unwrap(), None);
    assert_eq!(message_length(&ka).unwrap(), Some(19));

    let mut bad_marker = ka.clone();
    bad_marker[3] = 0;
    assert_reset(&bad_marker, &ebgp(), 1, 1);

    let mut short = ka.clone();
    short[17] = 18;
    let err = message_length(&short).unwrap_err();
    assert_eq!((err.notification.code, err.notification.subcode), (1, 2));
    assert_eq!(err.notification.data, vec![0, 18]);

    let mut long = ka.clone();
    long[16] = 0x10;
    long[17] = 0x01; // 4097
    let err = message_length(&long).unwrap_err();
    assert_eq!((err.notification.code, err.notification.subcode), (1, 2));

    let bad_type = frame(9, &[]);
    let err = message_length(&bad_type).unwrap_err();
    assert_eq!((err.notification.code, err.notification.subcode), (1, 3));
    assert_eq!(err.notification.data, vec![9]);

    // KEEPALIVE must be exactly 19 bytes, UPDATE at least 23.
    assert_reset(&frame(4, &[0]), &ebgp(), 1, 2);
    assert_reset(&frame(2, &[0, 0]), &ebgp(), 1, 2);
    // A frame shorter than its header claims.
    let mut truncated = update(&[], &good_attrs(), &NLRI);
    truncated.pop();
    assert_reset(&truncated, &ebgp(), 1, 2);
}

fn open_body(version: u8, my_as: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&my_as.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(params.len() as u8);
    b.extend_from_slice(params);
    frame(1, &b)
}

#[test]
fn open_errors_carry_the_right_notification() {
    let c = SessionContext::default();
    let ok = open_body(
        4,
        65000,
        90,
        [10, 0, 0, 1],
        &[2, 6, 65, 4, 0, 0, 0xfd, 0xe8],
    );
    match decode(&ok, &c).unwrap().message {
        Message::Open(o) => {
            assert_eq!(o.my_as, 65000);
            assert_eq!(o.hold_time, 90);
        }
        other => panic!("{other:?}"),
    }
    let err = decode(&open_body(3, 65000, 90, [10, 0, 0, 1], &[]), &c).unwrap_err();
    assert_eq!((err.notification.code, err.notification.subcode), (2, 1));
    assert_eq!(err.notification.data, vec![0, 4]);
    assert_reset(&open_body(4, 65000, 90, [0, 0, 0, 0], &[]), &c, 2, 3);
    assert_reset(
        &open_body(4, 65000, 90, [10, 0, 0, 1], &[1, 1, 0]),
        &c,
        2,
        4,
    );
    assert_reset(&open_body(4, 65000, 2, [10, 0, 0, 1], &[]), &c, 2, 6);
    // An unknown capability is kept, not an error (RFC 5492).
    let with_unknown = open_body(4, 65000, 90, [10, 0, 0, 1], &[2, 4, 200, 2, 7, 7]);
    match decode(&with_unknown, &c).unwrap().message {
        Message::Open(o) => assert_eq!(
            o.capabilities,
            vec![ferrolb_bgp::wire::Capability::Unknown {
                code: 200,
                value: vec![7, 7]
            }]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn notification_with_unknown_code_is_decoded_raw() {
    let d = decode(&frame(3, &[42, 7, 1, 2, 3]), &ebgp()).unwrap();
    match d.message {
        Message::Notification(n) => {
            assert_eq!((n.code, n.subcode, n.data), (42, 7, vec![1, 2, 3]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn route_refresh_for_unknown_family_is_ignored() {
    let d = decode(&frame(5, &[0, 2, 0, 1]), &ebgp()).unwrap();
    assert_eq!(d.message, Message::RouteRefresh(AddressFamily::Ipv6Unicast));
    let d = decode(&frame(5, &[0, 25, 0, 70]), &ebgp()).unwrap();
    assert_eq!(d.message, Message::Keepalive);
    assert!(matches!(d.actions[0], ErrorAction::Ignored { .. }));
}

#[test]
fn update_with_nothing_usable_is_not_mistaken_for_end_of_rib() {
    // Only an EVPN MP_REACH_NLRI: ignored, reported as KEEPALIVE (not an empty UPDATE,
    // which would read as IPv4 End-of-RIB).
    let attrs = vec![
        origin(),
        as_path_65000(),
        attr(0x80, 14, &[0, 25, 70, 4, 1, 2, 3, 4, 0, 1, 2]),
    ];
    let d = decode(&update(&[], &attrs, &[]), &ebgp()).unwrap();
    assert_eq!(d.message, Message::Keepalive);
    assert!(
        d.actions
            .iter()
            .all(|a| matches!(a, ErrorAction::Ignored { .. }))
    );
    // Malformed attributes and no NLRI: treat-as-withdraw has nothing to withdraw.
    let d = decode(
        &update(&[], &[attr(0x40, 1, &[9]), as_path_65000()], &[]),
        &ebgp(),
    )
    .unwrap();
    assert_eq!(d.message, Message::Keepalive);
    assert!(matches!(
        d.actions[0],
        ErrorAction::TreatAsWithdraw {
            type_code: Some(1),
            ..
        }
    ));
}
