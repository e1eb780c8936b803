//! Parsers for setting values, shared by every flag group: durations, byte sizes, numbers,
//! addresses, paths. Each error says what was expected, with an example.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Parses a duration: a bare number is seconds (`8`), otherwise humantime (`8s`, `500ms`, `1m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!(
            "`{s}` is not a duration ({e}); write seconds (`8`) or a unit (`8s`, `500ms`, `2m`)"
        )
    })
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
