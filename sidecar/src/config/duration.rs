//! Durations in the TOML file: `"250ms"`, `"5s"`, `"2m"`, or an integer of milliseconds; used
//! with `#[serde(with = "crate::config::duration")]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Millis(u64),
    Text(String),
}

/// Deserializes a duration (serde `with` entry point).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(d)? {
        Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
        Raw::Text(text) => parse(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "invalid duration {text:?}: expected e.g. \"250ms\", \"5s\", \"2m\" or an integer of milliseconds"
            ))
        }),
    }
}

/// Parses `"250ms"`, `"5s"`, `"2m"` (fractions allowed).
pub(crate) fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}
