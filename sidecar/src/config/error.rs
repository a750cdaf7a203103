//! [`ConfigError`]: why a configuration cannot be used (unreadable file, invalid TOML or
//! unknown key, a value out of range, a bad upstream URL), each variant naming the part that
//! is wrong so the message alone tells the operator what to fix.

use std::path::PathBuf;

/// A configuration that cannot be used, saying which part is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a value of the wrong type.
    #[error("invalid config file {path}: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key and position.
        source: toml::de::Error,
    },
    /// A key has a value outside its range.
    #[error("invalid config file {path}: `{key}` {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `limits.connect_timeout`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The upstream URL is unusable.
    #[error("invalid upstream {value:?}: {reason}")]
    Upstream {
        /// What was given.
        value: String,
        /// What is wrong.
        reason: String,
    },
}
