//! Go's `time.ParseDuration`, which MetalLB uses for `hold-time` and `keepalive-time`.
//!
//! Accepting exactly Go's grammar (`90s`, `1m30s`, `1.5m`, `0`, units ns/us/µs/ms/s/m/h)
//! keeps every existing MetalLB ConfigMap meaning the same thing here.

/// A parsed duration in nanoseconds (may be negative, as in Go).
pub fn parse_go_duration(text: &str) -> Result<i128, String> {
    let invalid = || format!("invalid duration {text:?}");
    let mut s = text;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        s = rest;
        // Fraction.
        let mut frac_digits = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (f, rest) = rest.split_at(frac_len);
            frac_digits = f;
            s = rest;
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or '.'.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        if unit.is_empty() {
            return Err(format!("missing unit in duration {text:?}"));
        }
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        let int_value: i128 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse::<i128>().map_err(|_| invalid())?
        };
        let mut value = int_value.checked_mul(scale).ok_or_else(invalid)?;
        // Fractions beyond nanosecond precision are dropped, as Go does.
        let mut divisor: i128 = 1;
        let mut frac_value: i128 = 0;
        for d in frac_digits.bytes().take(30) {
            frac_value = frac_value * 10 + i128::from(d - b'0');
            divisor *= 10;
        }
        if frac_value > 0 {
            value = value
                .checked_add(frac_value * scale / divisor)
                .ok_or_else(invalid)?;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        // Go limits durations to an int64 of nanoseconds.
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
    }
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_grammar() {
        assert_eq!(parse_go_duration("90s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("3m"), Ok(180_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5m"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1500ms"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("2h"), Ok(7_200_000_000_000));
        assert_eq!(parse_go_duration("10\u{b5}s"), Ok(10_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-5s"), Ok(-5_000_000_000));
    }

    #[test]
    fn go_errors() {
        assert_eq!(
            parse_go_duration("90"),
            Err("missing unit in duration \"90\"".to_string())
        );
        assert_eq!(
            parse_go_duration("5x"),
            Err("unknown unit \"x\" in duration \"5x\"".to_string())
        );
        assert_eq!(
            parse_go_duration(""),
            Err("invalid duration \"\"".to_string())
        );
        assert_eq!(
            parse_go_duration("s"),
            Err("invalid duration \"s\"".to_string())
        );
        assert_eq!(
            parse_go_duration("99999999999h"),
            Err("invalid duration \"99999999999h\"".to_string())
        );
    }
}
