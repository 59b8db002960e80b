//! BFD profiles as the speaker uses them: the echo function only exists on single-hop
//! sessions, so naming an echo-mode profile on an ebgp-multihop peer is accepted with a
//! warning (as FRR, which MetalLB's FRR mode configures, ignores echo there).

use ferrolb_config::parse_config;

const PROFILES: &str = "bfd-profiles:\n- name: echo\n  echo-mode: true\n- name: plain\n";

fn peer(multihop: bool, profile: &str) -> String {
    format!(
        "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64512\n  my-asn: 64522\n  \
         ebgp-multihop: {multihop}\n  bfd-profile: {profile}\n{PROFILES}"
    )
}

fn warnings(text: &str) -> Vec<String> {
    parse_config(text)
        .expect("valid")
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn echo_mode_on_a_multihop_peer_is_accepted_with_a_warning() {
    assert_eq!(
        warnings(&peer(true, "echo")),
        vec![
            "peers[0].bfd-profile (line 6): BFD profile \"echo\" sets echo-mode, which has no \
             effect on an ebgp-multihop peer (the echo function is single-hop only, as in FRR)"
        ]
    );
    assert!(warnings(&peer(false, "echo")).is_empty());
    assert!(warnings(&peer(true, "plain")).is_empty());
    let c = parse_config(&peer(true, "echo")).expect("valid").config;
    assert_eq!(c.peers[0].bfd_profile.as_deref(), Some("echo"));
    assert!(c.bfd_profile("echo").expect("defined").echo_mode);
}
