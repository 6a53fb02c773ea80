//! Argument values: numbers, timers, booleans, addresses. Each reader
//! reports its own error at the keyword's line and returns `None`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::{Block, Sink};

/// The `i`th argument, or an error "KEYWORD: missing WHAT".
pub(crate) fn arg<'a>(b: &'a Block, i: usize, what: &str, sink: &mut Sink) -> Option<&'a str> {
    match b.args.get(i) {
        Some(a) => Some(a.as_str()),
        None => {
            sink.err_at(b, format!("{}: missing {what}", b.keyword));
            None
        }
    }
}

/// Warns about arguments past `n`: keepalived ignores them silently, so
/// they do not fail a configuration it would run; `false` when there were.
pub(crate) fn at_most(b: &Block, n: usize, sink: &mut Sink) -> bool {
    if b.args.len() > n {
        sink.warn_at(
            b,
            format!(
                "{}: extra argument '{}' ignored (as keepalived does)",
                b.keyword, b.args[n]
            ),
        );
        return false;
    }
    true
}

/// An error when the keyword has a `{ }` block it should not have.
pub(crate) fn no_block(b: &Block, sink: &mut Sink) {
    if b.children.is_some() {
        sink.err_at(b, format!("{}: takes no '{{ }}' block", b.keyword));
    }
}

/// The single argument of a keyword.
pub(crate) fn one<'a>(b: &'a Block, what: &str, sink: &mut Sink) -> Option<&'a str> {
    no_block(b, sink);
    let a = arg(b, 0, what, sink)?;
    at_most(b, 1, sink);
    Some(a)
}

/// An unsigned integer in `min..=max` (decimal, as keepalived's
/// read_unsigned).
pub(crate) fn parse_uint(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let v: u64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v < min || v > max {
        return Err(format!("{v} is outside {min}..={max}"));
    }
    Ok(v)
}

/// The single argument as an unsigned integer in `min..=max`.
pub(crate) fn uint(b: &Block, min: u64, max: u64, sink: &mut Sink) -> Option<u64> {
    let s = one(b, "value", sink)?;
    match parse_uint(s, min, max) {
        Ok(v) => Some(v),
        Err(why) => {
            sink.err_at(b, format!("{}: {why}", b.keyword));
            None
        }
    }
}

/// [`uint`] as `u32`.
pub(crate) fn u32_in(b: &Block, min: u32, max: u32, sink: &mut Sink) -> Option<u32> {
    uint(b, min.into(), max.into(), sink).and_then(|v| u32::try_from(v).ok())
}

/// A keepalived TIMER: seconds with optional fraction (micro-second
/// resolution).
pub(crate) fn parse_timer(s: &str) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a time in seconds");
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if !int.bytes().all(|c| c.is_ascii_digit()) || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    // keepalived keeps timers in micro-seconds in 64 bits.
    if secs > u64::MAX / 1_000_000 - 1 {
        return Err(format!("{s} seconds is too long"));
    }
    let mut micros: u32 = 0;
    for (k, c) in frac.bytes().take(6).enumerate() {
        micros += u32::from(c - b'0') * 10u32.pow(5 - k as u32);
    }
    Ok(Duration::from_secs(secs) + Duration::from_micros(micros.into()))
}

/// The single argument as a TIMER, at least `min`.
pub(crate) fn timer(b: &Block, min: Duration, sink: &mut Sink) -> Option<Duration> {
    timer_in(b, min, Duration::MAX, sink)
}

/// The single argument as a TIMER in `min..=max`.
pub(crate) fn timer_in(
    b: &Block,
    min: Duration,
    max: Duration,
    sink: &mut Sink,
) -> Option<Duration> {
    let s = one(b, "time", sink)?;
    match parse_timer(s) {
        Ok(d) if d > max => {
            sink.err_at(
                b,
                format!(
                    "{}: {s} is above the maximum {} s",
                    b.keyword,
                    max.as_secs_f64()
                ),
            );
            None
        }
        Ok(d) if d >= min => Some(d),
        Ok(_) => {
            sink.err_at(
                b,
                format!(
                    "{}: {s} is below the minimum {} s",
                    b.keyword,
                    min.as_secs_f64()
                ),
            );
            None
        }
        Err(why) => {
            sink.err_at(b, format!("{}: {why}", b.keyword));
            None
        }
    }
}

/// keepalived's `<BOOL>`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// A flag with an optional `<BOOL>` (`alpha`, `alpha yes`, …).
pub(crate) fn flag(b: &Block, sink: &mut Sink) -> Option<bool> {
    no_block(b, sink);
    match b.args.first() {
        None => Some(true),
        Some(s) => {
            at_most(b, 1, sink);
            match parse_bool(s) {
                Some(v) => Some(v),
                None => {
                    sink.err_at(
                        b,
                        format!(
                            "{}: '{s}' is not one of on|off|true|false|yes|no",
                            b.keyword
                        ),
                    );
                    None
                }
            }
        }
    }
}

/// A flag that takes no argument at all (extra ones warned).
pub(crate) fn bare(b: &Block, sink: &mut Sink) -> bool {
    no_block(b, sink);
    at_most(b, 0, sink);
    true
}

/// A numeric IPv4 or IPv6 address (IPv6 may carry `%scope`, dropped; a
/// `[…]` form is accepted).
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(a));
    }
    let s6 = s.split_once('%').map_or(s, |(a, _)| a);
    s6.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// Argument `i` as an address.
pub(crate) fn ip(b: &Block, i: usize, sink: &mut Sink) -> Option<IpAddr> {
    let s = arg(b, i, "address", sink)?;
    match parse_ip(s) {
        Some(a) => Some(a),
        None => {
            sink.err_at(b, format!("{}: '{s}' is not an IP address", b.keyword));
            None
        }
    }
}

/// Argument `i` as a port (1..=65535; 0 means none where `zero_ok`).
/// `Ok(None)`: no argument.
pub(crate) fn port(b: &Block, i: usize, zero_ok: bool, sink: &mut Sink) -> Result<Option<u16>, ()> {
    let Some(s) = b.args.get(i) else {
        return Ok(None);
    };
    let min = if zero_ok { 0 } else { 1 };
    match parse_uint(s, min, 65535) {
        Ok(0) => Ok(None),
        Ok(v) => Ok(u16::try_from(v).ok()),
        Err(why) => {
            sink.err_at(b, format!("{}: port {why}", b.keyword));
            Err(())
        }
    }
}

/// The single argument as a string (any text).
pub(crate) fn string(b: &Block, sink: &mut Sink) -> Option<String> {
    one(b, "value", sink).map(str::to_string)
}

/// keepalived keeps the first of some keywords and ignores a repeat with a
/// complaint: `true` (and a warning) when `slot` is already set.
pub(crate) fn repeated<T>(b: &Block, slot: &Option<T>, sink: &mut Sink) -> bool {
    if slot.is_some() {
        sink.warn_at(
            b,
            format!(
                "{}: given again, the first one is kept (as keepalived)",
                b.keyword
            ),
        );
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_take_fractions() {
        assert_eq!(parse_timer("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_timer("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_timer("0.000001"), Ok(Duration::from_micros(1)));
        assert_eq!(parse_timer(".5"), Ok(Duration::from_millis(500)));
        assert!(parse_timer("").is_err());
        assert!(parse_timer(".").is_err());
        assert!(parse_timer("-1").is_err());
        assert!(parse_timer("1s").is_err());
        assert!(parse_timer("99999999999999999999").is_err());
        assert_eq!(
            parse_timer("99999999999"),
            Ok(Duration::from_secs(99_999_999_999))
        );
    }

    #[test]
    fn numbers_and_ranges() {
        assert_eq!(parse_uint("7", 1, 10), Ok(7));
        assert!(parse_uint("0", 1, 10).is_err());
        assert!(parse_uint("11", 1, 10).is_err());
        assert!(parse_uint("x", 1, 10).is_err());
        assert!(parse_uint("-1", 0, 10).is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_ip("10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip("fe80::1%eth0"), Some("fe80::1".parse().unwrap()));
        assert_eq!(
            parse_ip("[2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_ip("10.0.0"), None);
        assert_eq!(parse_ip("host.example"), None);
    }

    #[test]
    fn bools() {
        assert_eq!(parse_bool("YES"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("1"), None);
    }
}
