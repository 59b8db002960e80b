//! BGP community values: `high:low` (RFC 1997) and ferrolb's `large:a:b:c` (RFC 8092).

use crate::model::Community;

/// Parses a community written out in full (not an alias). Errors give the reason only.
pub fn parse_community(text: &str) -> Result<Community, String> {
    if let Some(rest) = text.strip_prefix("large:") {
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() != 3 {
            return Err("a large community has the form large:<u32>:<u32>:<u32>".to_string());
        }
        let mut v = [0u32; 3];
        for (i, (slot, part)) in v.iter_mut().zip(&parts).enumerate() {
            *slot = part.parse::<u32>().map_err(|_| {
                format!(
                    "part {} {part:?} is not a number from 0 to 4294967295",
                    i + 1
                )
            })?;
        }
        return Ok(Community::Large(v[0], v[1], v[2]));
    }
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 2 {
        return Err("a community has the form <0-65535>:<0-65535>".to_string());
    }
    let high = parts[0]
        .parse::<u16>()
        .map_err(|_| format!("first part {:?} is not a number from 0 to 65535", parts[0]))?;
    let low = parts[1]
        .parse::<u16>()
        .map_err(|_| format!("second part {:?} is not a number from 0 to 65535", parts[1]))?;
    Ok(Community::Standard(
        (u32::from(high) << 16) | u32::from(low),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_large() {
        assert_eq!(
            parse_community("65535:65281"),
            Ok(Community::Standard(0xffff_ff01))
        );
        assert_eq!(parse_community("0:0"), Ok(Community::Standard(0)));
        assert_eq!(
            parse_community("large:64512:1:4294967295"),
            Ok(Community::Large(64512, 1, u32::MAX))
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_community("65536:1"),
            Err("first part \"65536\" is not a number from 0 to 65535".into())
        );
        assert_eq!(
            parse_community("1:x"),
            Err("second part \"x\" is not a number from 0 to 65535".into())
        );
        assert_eq!(
            parse_community("1:2:3"),
            Err("a community has the form <0-65535>:<0-65535>".into())
        );
        assert_eq!(
            parse_community("large:1:2"),
            Err("a large community has the form large:<u32>:<u32>:<u32>".into())
        );
        assert_eq!(
            parse_community("large:1:2:-3"),
            Err("part 3 \"-3\" is not a number from 0 to 4294967295".into())
        );
    }
}
