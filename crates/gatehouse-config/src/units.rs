//! Durations and sizes as users write them: `"30s"`, `"1m 30s"`, `"500ms"` or integer seconds;
//! `"10MiB"`, `"16KiB"`, `"1GB"` or integer bytes.
//!
//! The file model keeps the raw value ([`Duration`], [`Size`]) and validation converts it, so that
//! every bad value in a file is reported in one run instead of serde stopping at the first.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The longest duration we accept. Far beyond any sensible timeout, and small enough that adding it
/// to `Instant::now()` can never overflow somewhere downstream (which would panic).
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// A duration as written in the file, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duration {
    Seconds(i64),
    Text(String),
}

impl Duration {
    /// The checked value, or a message saying what is wrong with it.
    pub fn to_std(&self) -> Result<std::time::Duration, String> {
        let value = match self {
            Duration::Seconds(secs) => match u64::try_from(*secs) {
                Ok(secs) => std::time::Duration::from_secs(secs),
                Err(_) => return Err("duration must not be negative".to_owned()),
            },
            Duration::Text(text) => parse_duration(text)?,
        };
        if value > MAX_DURATION {
            return Err("duration is too large (at most 365 days)".to_owned());
        }
        Ok(value)
    }
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err("duration must not be negative".to_owned());
    }
    // A quoted bare number means seconds, like an unquoted one.
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return match trimmed.parse::<u64>() {
            Ok(secs) => Ok(std::time::Duration::from_secs(secs)),
            Err(_) => Err("duration is too large (at most 365 days)".to_owned()),
        };
    }
    humantime::parse_duration(trimmed).map_err(|err| match err {
        humantime::DurationError::NumberOverflow => {
            "duration is too large (at most 365 days)".to_owned()
        }
        // humantime's own message lists every unit; one line is enough here.
        humantime::DurationError::UnknownUnit { unit, .. } => format!(
            "invalid duration {text:?}: unknown unit {unit:?} (write e.g. \"30s\", \"500ms\", \"1m 30s\")"
        ),
        other => format!(
            "invalid duration {text:?}: {other} (write e.g. \"30s\", \"500ms\", \"1m 30s\")"
        ),
    })
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like \"30s\" or an integer number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Ok(Duration::Seconds(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::Seconds(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Ok(Duration::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A size in bytes as written in the file, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Size {
    Bytes(i64),
    Text(String),
}

impl Size {
    /// The checked number of bytes, or a message saying what is wrong with it.
    pub fn to_bytes(&self) -> Result<u64, String> {
        match self {
            Size::Bytes(bytes) => {
                u64::try_from(*bytes).map_err(|_| "size must not be negative".to_owned())
            }
            Size::Text(text) => {
                let trimmed = text.trim();
                if trimmed.starts_with('-') {
                    return Err("size must not be negative".to_owned());
                }
                parse_size::parse_size(trimmed).map_err(|err| match err {
                    parse_size::Error::PosOverflow => "size is too large".to_owned(),
                    _ => format!(
                        "invalid size {text:?} (write e.g. \"10MiB\", \"16KiB\", \"1GB\" or an integer number of bytes)"
                    ),
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size like \"10MiB\" or an integer number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                Ok(Size::Bytes(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size::Bytes(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                Ok(Size::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    fn text(s: &str) -> Result<Std, String> {
        Duration::Text(s.to_owned()).to_std()
    }

    #[test]
    fn durations() {
        assert_eq!(text("30s"), Ok(Std::from_secs(30)));
        assert_eq!(text("500ms"), Ok(Std::from_millis(500)));
        assert_eq!(text("1m 30s"), Ok(Std::from_secs(90)));
        assert_eq!(text("2h"), Ok(Std::from_secs(7200)));
        assert_eq!(text("45"), Ok(Std::from_secs(45)));
        assert_eq!(text("0"), Ok(Std::ZERO));
        assert_eq!(Duration::Seconds(7).to_std(), Ok(Std::from_secs(7)));
    }

    #[test]
    fn bad_durations() {
        assert_eq!(text("-5s").unwrap_err(), "duration must not be negative");
        assert_eq!(
            Duration::Seconds(-1).to_std().unwrap_err(),
            "duration must not be negative"
        );
        assert!(text("30x")
            .unwrap_err()
            .starts_with("invalid duration \"30x\": "));
        assert!(text("").unwrap_err().starts_with("invalid duration"));
        assert_eq!(
            text("99999999999999999999999s").unwrap_err(),
            "duration is too large (at most 365 days)"
        );
        assert_eq!(
            text("366d").unwrap_err(),
            "duration is too large (at most 365 days)"
        );
        assert_eq!(
            Duration::Seconds(i64::MAX).to_std().unwrap_err(),
            "duration is too large (at most 365 days)"
        );
    }

    #[test]
    fn sizes() {
        let size = |s: &str| Size::Text(s.to_owned()).to_bytes();
        assert_eq!(size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(size("16KiB"), Ok(16 * 1024));
        assert_eq!(size("1GB"), Ok(1_000_000_000));
        assert_eq!(size("512"), Ok(512));
        assert_eq!(Size::Bytes(4096).to_bytes(), Ok(4096));
        assert_eq!(
            Size::Bytes(-1).to_bytes().unwrap_err(),
            "size must not be negative"
        );
        assert_eq!(size("-1KiB").unwrap_err(), "size must not be negative");
        assert_eq!(size("99999999999EiB").unwrap_err(), "size is too large");
        assert!(size("lots")
            .unwrap_err()
            .starts_with("invalid size \"lots\""));
    }
}
