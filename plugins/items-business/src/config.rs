//! The plugin configuration (the `configuration` string of the sidecar's `[[plugins]]` entry),
//! JSON, every field optional: `{"collection_path": "/items"}`.

use serde::Deserialize;

/// What the plugin reads from its configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Path of the items collection: `POST <path>` creates, `PUT|DELETE <path>/{id}` mutate.
    #[serde(default = "default_collection_path")]
    pub collection_path: String,
}

fn default_collection_path() -> String {
    "/items".to_owned()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            collection_path: default_collection_path(),
        }
    }
}

impl Config {
    /// An absent or blank configuration means the defaults; anything else must be valid JSON.
    pub fn parse(bytes: Option<&[u8]>) -> Result<Config, String> {
        let bytes = bytes.unwrap_or_default();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Config::default());
        }
        let mut config: Config = serde_json::from_slice(bytes)
            .map_err(|e| format!("items-business: invalid plugin configuration: {e}"))?;
        config.collection_path = config.collection_path.trim_end_matches('/').to_owned();
        if !config.collection_path.starts_with('/') {
            return Err("items-business: collection_path must start with '/'".to_owned());
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_path_defaults_and_is_validated() {
        assert_eq!(
            Config::parse(Some(b"  ")).unwrap().collection_path,
            "/items"
        );
        assert_eq!(
            Config::parse(Some(br#"{"collection_path": "/things/"}"#))
                .unwrap()
                .collection_path,
            "/things"
        );
        assert!(Config::parse(Some(br#"{"collection_path": "things"}"#)).is_err());
    }
}
