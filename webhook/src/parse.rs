//! Parsers for setting values, shared by every flag group: durations, byte sizes, numbers,
//! addresses, paths. Each error says what was expected, with an example.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Longest duration a setting takes. Durations are added to the clock (`Instant + d`, which
/// panics on overflow), and no timeout, age or TTL of the webhook is usefully longer.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration: a bare number is seconds (`8`), otherwise humantime (`8s`, `500ms`, `1m`).
/// At most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = if let Ok(secs) = s.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        // `from_secs_f64` panics past `Duration::MAX` (`1e30`); too large is an error below.
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    } else {
        humantime::parse_duration(s).map_err(|e| {
            format!(
                "`{s}` is not a duration ({e}); write seconds (`8`) or a unit (`8s`, `500ms`, `2m`)"
            )
        })?
    };
    if d > MAX_DURATION {
        return Err(format!("`{s}` is too long; give at most 365 days (`365d`)"));
    }
    Ok(d)
}

/// Parses a byte size: a plain number of bytes, or with a `KiB`/`MiB`/`GiB` (or `K`/`M`/`G`) suffix.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| {
        format!("`{s}` is not a byte size; write e.g. `4194304`, `4MiB` or `512KiB`")
    })?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "Ki" => 1 << 10,
        "M" | "MiB" | "Mi" => 1 << 20,
        "G" | "GiB" | "Gi" => 1 << 30,
        other => {
            return Err(format!(
                "`{s}`: unknown size unit `{other}`; use B, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("`{s}` is out of range; give a positive size"))
}

pub fn parse_positive<T: FromStr + PartialOrd + Default>(s: &str) -> Result<T, String> {
    match s.trim().parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("`{s}` is not a positive whole number")),
    }
}

pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("`{s}` is not a socket address; write e.g. `0.0.0.0:8443` or `[::]:8443`")
    })
}

pub fn parse_string(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        Err("the value is empty".into())
    } else {
        Ok(s.to_owned())
    }
}

pub fn parse_path(s: &str) -> Result<PathBuf, String> {
    parse_string(s).map(PathBuf::from)
}

/// Serializes a duration as `--print-config` writes it (`8s`, `1m`).
pub fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_past_the_clock_are_errors_not_panics() {
        for s in ["1e30", "1e300", "18446744073709551615", "366d", "31536001"] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.contains("too long"), "{s}: {e}");
        }
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("31536000"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
    }
}
