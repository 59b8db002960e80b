//! The BFD Control packet codec against packets captured from BIRD 2.0.12 and FRR bfdd
//! 8.4.4 talking to each other (`testdata/bfd/`, see `testdata/CAPTURE.md`): every packet
//! decodes to the fields tshark dissected and re-encodes to the same bytes. Then malformed
//! packets: each is refused with its reason, and no byte pattern panics.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_bgp::bfd::{ControlPacket, Diag, PacketError, SessionState};

const PCAP: &[u8] = include_bytes!("../testdata/bfd/bird-frr.pcap");
const FIELDS: &str = include_str!("../testdata/bfd/bird-frr.fields");

struct Captured {
    src: IpAddr,
    ttl: u8,
    dst_port: u16,
    payload: Vec<u8>,
}

fn u16be(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The UDP datagrams of a classic pcap file with Ethernet frames.
fn udp_datagrams(pcap: &[u8]) -> Vec<Captured> {
    let magic = u32::from_le_bytes(pcap[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
        "little-endian pcap expected, magic {magic:x}"
    );
    let linktype = u32::from_le_bytes(pcap[20..24].try_into().unwrap());
    assert_eq!(linktype, 1, "Ethernet");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..at + 16 + incl];
        at += 16 + incl;
        let ethertype = u16be(frame, 12);
        let ip = &frame[14..];
        let (src, ttl, udp) = match ethertype {
            0x0800 => {
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                assert_eq!(ip[9], 17, "UDP");
                let src = IpAddr::from(<[u8; 4]>::try_from(&ip[12..16]).unwrap());
                (src, ip[8], &ip[ihl..])
            }
            0x86dd => {
                assert_eq!(ip[6], 17, "UDP without extension headers");
                let src = IpAddr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
                (src, ip[7], &ip[40..])
            }
            other => panic!("ethertype {other:x}"),
        };
        let len = usize::from(u16be(udp, 4));
        out.push(Captured {
            src,
            ttl,
            dst_port: u16be(udp, 2),
            payload: udp[8..len].to_vec(),
        });
    }
    out
}

fn hex(s: &str) -> u32 {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex")
}

fn dec(s: &str) -> u32 {
    s.parse().expect("decimal")
}

#[test]
fn every_captured_packet_decodes_as_tshark_says_and_reencodes_byte_exact() {
    let packets = udp_datagrams(PCAP);
    let lines: Vec<&str> = FIELDS.lines().collect();
    assert_eq!(packets.len(), lines.len());
    assert!(packets.len() > 300, "{}", packets.len());
    let mut seen: BTreeSet<(String, u8)> = BTreeSet::new();
    for (i, (c, line)) in packets.iter().zip(&lines).enumerate() {
        // frame ip.src ipv6.src ip.ttl ipv6.hlim sport dport version diag sta flags mult len
        // my your tx rx echo (empty fields keep their separator)
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 18, "line {i}: {line}");
        let src: IpAddr = if f[1].is_empty() { f[2] } else { f[1] }
            .parse()
            .expect("address");
        let ttl = dec(if f[3].is_empty() { f[4] } else { f[3] }) as u8;
        assert_eq!((c.src, c.ttl), (src, ttl), "line {i}");
        assert_eq!(u32::from(c.dst_port), dec(f[6]));
        let p = ControlPacket::decode(&c.payload)
            .unwrap_or_else(|e| panic!("packet {i} from {src}: {e}: {:02x?}", c.payload));
        assert_eq!(dec(f[7]), 1, "version");
        assert_eq!(u32::from(p.diag.code()), hex(f[8]), "diag, line {i}");
        let sta = match p.state {
            SessionState::AdminDown => 0,
            SessionState::Down => 1,
            SessionState::Init => 2,
            SessionState::Up => 3,
        };
        assert_eq!(sta, hex(f[9]), "state, line {i}");
        let bytes = p.encode();
        assert_eq!(u32::from(bytes[1]), hex(f[10]), "flags byte, line {i}");
        assert_eq!(u32::from(p.detect_mult), dec(f[11]));
        assert_eq!(dec(f[12]), 24);
        assert_eq!(p.my_discriminator, hex(f[13]));
        assert_eq!(p.your_discriminator, hex(f[14]));
        assert_eq!(p.desired_min_tx, dec(f[15]));
        assert_eq!(p.required_min_rx, dec(f[16]));
        assert_eq!(p.required_min_echo_rx, dec(f[17]));
        assert_eq!(&bytes[..], &c.payload[..], "re-encoded bytes, line {i}");
        let who = match src.to_string().as_str() {
            "10.0.0.1" | "fd00::1" | "10.1.0.1" => "bird",
            _ => "frr",
        };
        seen.insert((who.to_string(), bytes[1] & 0xf0));
    }
    // The capture covers every state, Poll and Final, from both daemons (FRR's AdminDown).
    for (who, flags) in [
        ("bird", 0x40),
        ("bird", 0x60),
        ("bird", 0x80),
        ("bird", 0xc0),
        ("bird", 0xd0),
        ("bird", 0xe0),
        ("frr", 0x00),
        ("frr", 0x10),
        ("frr", 0x40),
        ("frr", 0x80),
        ("frr", 0xc0),
        ("frr", 0xd0),
        ("frr", 0xe0),
    ] {
        assert!(
            seen.contains(&(who.to_string(), flags)),
            "no {who} packet with flags {flags:#x} in the capture"
        );
    }
}

fn base() -> [u8; 24] {
    // BIRD's first Up packet with Poll from the capture.
    let p = udp_datagrams(PCAP)
        .into_iter()
        .map(|c| c.payload)
        .find(|b| b[1] == 0xe0)
        .expect("an Up+P packet");
    p.try_into().expect("24 bytes")
}

#[test]
fn malformed_packets_are_refused_with_their_reason() {
    let ok = base();
    assert!(ControlPacket::decode(&ok).is_ok());
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = ok.to_vec();
        f(&mut b);
        ControlPacket::decode(&b)
    };
    assert_eq!(with(&|b| b.truncate(23)), Err(PacketError::Truncated(23)));
    assert_eq!(with(&|b| b[0] = 0x40), Err(PacketError::BadVersion(2)));
    assert_eq!(with(&|b| b[0] = 0x00), Err(PacketError::BadVersion(0)));
    assert_eq!(with(&|b| b[3] = 20), Err(PacketError::LengthTooSmall(20)));
    assert_eq!(
        with(&|b| b[3] = 25),
        Err(PacketError::LengthBeyondPayload {
            field: 25,
            payload: 24
        })
    );
    assert_eq!(with(&|b| b[2] = 0), Err(PacketError::ZeroDetectMult));
    assert_eq!(with(&|b| b[1] |= 0x01), Err(PacketError::Multipoint));
    assert_eq!(
        with(&|b| b[4..8].fill(0)),
        Err(PacketError::ZeroMyDiscriminator)
    );
    assert_eq!(
        with(&|b| b[8..12].fill(0)),
        Err(PacketError::ZeroYourDiscriminator(SessionState::Up))
    );
    // Your Discriminator 0 is fine while the sender is Down.
    let down = with(&|b| {
        b[8..12].fill(0);
        b[1] = 0x40;
    })
    .expect("Down with Your Discriminator 0");
    assert_eq!(down.state, SessionState::Down);
    // Authentication is not configured: a packet with the A bit is refused (section 6.8.6),
    // and one claiming A but shorter than 26 bytes fails the length check first.
    assert_eq!(
        with(&|b| b[1] |= 0x04),
        Err(PacketError::LengthTooSmall(24))
    );
    assert_eq!(
        with(&|b| {
            b[1] |= 0x04;
            b[3] = 26;
            b.extend_from_slice(&[1, 2]);
        }),
        Err(PacketError::AuthNotConfigured)
    );
    assert_eq!(with(&|b| b[1] |= 0x10), Err(PacketError::PollAndFinal));
    // A longer datagram is fine as long as the Length field says 24.
    let p = with(&|b| b.extend_from_slice(&[0xff; 8])).expect("trailing bytes ignored");
    assert_eq!(p.encode(), ok);
    // Kinds name the counters.
    assert_eq!(PacketError::ZeroDetectMult.kind(), "zero_detect_mult");
    assert_eq!(PacketError::BadVersion(0).kind(), "bad_version");
}

#[test]
fn no_byte_pattern_panics_and_valid_decodes_reencode() {
    let ok = base();
    for len in 0..=40usize {
        let mut b = ok.to_vec();
        b.resize(len, 0xa5);
        let _ = ControlPacket::decode(&b);
    }
    // Every value at every position of a real packet.
    for pos in 0..24 {
        for v in 0..=255u8 {
            let mut b = ok;
            b[pos] = v;
            if let Ok(p) = ControlPacket::decode(&b) {
                // Only the diag values, flags we keep, discriminators and intervals can
                // vary; all of them round-trip.
                assert_eq!(p.encode(), b, "pos {pos} value {v}");
            }
        }
    }
    // Pseudo-random datagrams.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut b = [0u8; 32];
        for byte in &mut b {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *byte = x as u8;
        }
        b[0] = (b[0] & 0x1f) | 0x20;
        let len = 24 + (x % 9) as usize;
        if let Ok(p) = ControlPacket::decode(&b[..len]) {
            // A Length above 24 (trailing bytes, no authentication) is accepted; we always
            // write 24.
            let mut want = b;
            want[3] = 24;
            assert_eq!(p.encode()[..], want[..24]);
            assert_eq!(p.diag, Diag::from_code(b[0]));
        }
    }
}
