//! The media port range, `port_range = "40000-40099"`: ports a router forwards to the
//! device, from which the egress loop takes its sockets' ports.

/// Parses `"40000-40099"`.
pub fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let (low, high) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?}: expected LOW-HIGH, such as 40000-40099"))?;
    let low: u16 = low
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {low:?} is not a port"))?;
    let high: u16 = high
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {high:?} is not a port"))?;
    if low == 0 || low > high {
        return Err(format!("{text:?}: must be LOW-HIGH with 0 < LOW <= HIGH"));
    }
    Ok((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_nonsense_does_not() {
        assert_eq!(parse_range("40000-40099"), Ok((40000, 40099)));
        assert_eq!(parse_range(" 40000 - 40000 "), Ok((40000, 40000)));
        assert!(parse_range("40099-40000").is_err());
        assert!(parse_range("0-10").is_err());
        assert!(parse_range("40000").is_err());
        assert!(parse_range("40000-70000").is_err());
    }
}
