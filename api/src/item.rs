//! The resource: [`Item`] as stored and returned, and [`NewItem`], a request body that passed
//! validation.
//!
//! Body rules (documented in `openapi.json`): a JSON object with exactly `nom` (a string of 1 to
//! 200 characters, not only whitespace, no NUL) and `prix` (a finite number ≥ 0). Malformed
//! JSON is a 400; anything else that breaks a rule is a 422 naming the field. An `id` member is
//! refused on `POST` (the server assigns ids) and accepted on `PUT` only when it equals the id
//! in the path, so a client may send back an item it read. Any other member is refused, so a
//! typo (`"prics"`) is reported rather than silently dropped.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

/// Why a request body is not an item; the api answers 400 or 422 ([`crate::error::Error`]).
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not JSON at all (400); the message says what is wrong.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed JSON that breaks the rules for `field` (422).
    #[error("{message}")]
    Invalid {
        /// The offending field; `None` when the body as a whole is wrong (not an object).
        field: Option<String>,
        /// What is wrong with it.
        message: String,
    },
}

impl BodyError {
    /// A 422 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> BodyError {
        BodyError::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A 422 about the body as a whole.
    pub fn invalid_body(message: impl Into<String>) -> BodyError {
        BodyError::Invalid {
            field: None,
            message: message.into(),
        }
    }
}

/// Longest `nom`, in characters (as PostgreSQL's `char_length` counts them).
pub const MAX_NOM_CHARS: usize = 200;

/// An item as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    /// Assigned by the database (`BIGSERIAL`), from 1.
    pub id: i64,
    /// The name.
    pub nom: String,
    /// The price, finite and non-negative.
    pub prix: f64,
}

/// A validated `POST`/`PUT` body.
#[derive(Clone, Debug, PartialEq)]
pub struct NewItem {
    /// The name.
    pub nom: String,
    /// The price.
    pub prix: f64,
}

impl NewItem {
    /// Validates a request body. `path_id` is the id in the path for `PUT`, `None` for `POST`.
    ///
    /// # Errors
    /// [`BodyError::Malformed`] for malformed JSON, [`BodyError::Invalid`] naming the field
    /// otherwise.
    pub fn parse(body: &[u8], path_id: Option<i64>) -> Result<NewItem, BodyError> {
        // Raw values keep each member's text, so `prix` can be read with full range checks
        // (serde_json itself refuses `1e400` as a syntax error, but it is a valid JSON number
        // that is simply not finite: a 422, not a 400).
        let members: BTreeMap<String, Box<RawValue>> =
            serde_json::from_slice(body).map_err(|e| {
                if e.is_data() {
                    BodyError::invalid_body("the body must be a JSON object with `nom` and `prix`")
                } else {
                    BodyError::Malformed(format!("malformed JSON: {e}"))
                }
            })?;
        if let Some(unknown) = members
            .keys()
            .find(|k| !matches!(k.as_str(), "nom" | "prix" | "id"))
        {
            return Err(BodyError::invalid(
                unknown.as_str(),
                format!("unknown field `{unknown}`: only `nom` and `prix` are accepted"),
            ));
        }
        if let Some(id) = members.get("id") {
            check_id(id, path_id)?;
        }
        let nom = parse_nom(members.get("nom").map(AsRef::as_ref))?;
        let prix = parse_prix(members.get("prix").map(AsRef::as_ref))?;
        Ok(NewItem { nom, prix })
    }
}

fn check_id(raw: &RawValue, path_id: Option<i64>) -> Result<(), BodyError> {
    let Some(path_id) = path_id else {
        return Err(BodyError::invalid(
            "id",
            "`id` is assigned by the server; leave it out",
        ));
    };
    match serde_json::from_str::<i64>(raw.get()) {
        Ok(id) if id == path_id => Ok(()),
        _ => Err(BodyError::invalid(
            "id",
            format!("`id` must be the id in the path ({path_id}) or left out"),
        )),
    }
}

fn parse_nom(raw: Option<&RawValue>) -> Result<String, BodyError> {
    let raw = raw
        .filter(|r| r.get() != "null")
        .ok_or_else(|| BodyError::invalid("nom", "`nom` is required"))?;
    let nom: String = serde_json::from_str(raw.get())
        .map_err(|_| BodyError::invalid("nom", "`nom` must be a string"))?;
    if nom.trim().is_empty() {
        return Err(BodyError::invalid("nom", "`nom` must not be empty"));
    }
    if nom.chars().count() > MAX_NOM_CHARS {
        return Err(BodyError::invalid(
            "nom",
            format!("`nom` must be at most {MAX_NOM_CHARS} characters"),
        ));
    }
    if nom.contains('\0') {
        // PostgreSQL text cannot hold NUL.
        return Err(BodyError::invalid(
            "nom",
            "`nom` must not contain NUL characters",
        ));
    }
    Ok(nom)
}

fn parse_prix(raw: Option<&RawValue>) -> Result<f64, BodyError> {
    let raw = raw
        .filter(|r| r.get() != "null")
        .ok_or_else(|| BodyError::invalid("prix", "`prix` is required"))?;
    let text = raw.get();
    // A raw value starting with `-` or a digit is a JSON number (serde_json validated the
    // syntax), and Rust's float grammar accepts every JSON number.
    let is_number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    let prix: f64 = match text.parse() {
        Ok(prix) if is_number => prix,
        _ => return Err(BodyError::invalid("prix", "`prix` must be a number")),
    };
    if !prix.is_finite() {
        return Err(BodyError::invalid("prix", "`prix` must be a finite number"));
    }
    if prix < 0.0 {
        return Err(BodyError::invalid("prix", "`prix` must not be negative"));
    }
    // `-0` passes the check above; store it as 0.
    Ok(prix + 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str, path_id: Option<i64>) -> String {
        match NewItem::parse(body.as_bytes(), path_id) {
            Err(BodyError::Invalid { field, .. }) => field.unwrap_or_else(|| "(none)".into()),
            other => panic!("{body}: expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn the_seed_request_body_is_accepted() {
        let item = NewItem::parse(br#"{"nom":"Test","prix":10.5}"#, None).expect("valid");
        assert_eq!(
            item,
            NewItem {
                nom: "Test".into(),
                prix: 10.5
            }
        );
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        for body in [
            "",
            "{",
            r#"{"nom":"x","prix":}"#,
            r#"{"nom":"x","prix":NaN}"#,
            "{'nom':'x'}",
        ] {
            assert!(
                matches!(
                    NewItem::parse(body.as_bytes(), None),
                    Err(BodyError::Malformed(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(field_of(r#"{"prix":1}"#, None), "nom");
        assert_eq!(field_of(r#"{"nom":null,"prix":1}"#, None), "nom");
        assert_eq!(field_of(r#"{"nom":"","prix":1}"#, None), "nom");
        assert_eq!(field_of(r#"{"nom":"   ","prix":1}"#, None), "nom");
        assert_eq!(field_of(r#"{"nom":5,"prix":1}"#, None), "nom");
        assert_eq!(field_of(r#"{"nom":"a\u0000b","prix":1}"#, None), "nom");
        assert_eq!(
            field_of(
                &format!(r#"{{"nom":"{}","prix":1}}"#, "é".repeat(201)),
                None
            ),
            "nom"
        );
        assert_eq!(field_of(r#"{"nom":"x"}"#, None), "prix");
        assert_eq!(field_of(r#"{"nom":"x","prix":-0.01}"#, None), "prix");
        assert_eq!(field_of(r#"{"nom":"x","prix":"10"}"#, None), "prix");
        assert_eq!(field_of(r#"{"nom":"x","prix":1e400}"#, None), "prix");
        assert_eq!(field_of(r#"{"nom":"x","prix":true}"#, None), "prix");
        assert_eq!(field_of(r#"{"nom":"x","prix":1,"prics":2}"#, None), "prics");
        assert_eq!(field_of(r#"{"nom":"x","prix":1,"id":3}"#, None), "id");
        assert_eq!(field_of(r#"{"nom":"x","prix":1,"id":3}"#, Some(4)), "id");
        assert_eq!(field_of("[1,2]", None), "(none)");
    }

    #[test]
    fn boundaries_are_accepted() {
        let nom = "é".repeat(MAX_NOM_CHARS);
        let item = NewItem::parse(format!(r#"{{"nom":"{nom}","prix":0}}"#).as_bytes(), None)
            .expect("200 chars");
        assert_eq!(item.nom.chars().count(), MAX_NOM_CHARS);
        assert_eq!(
            NewItem::parse(br#"{"nom":"x","prix":-0}"#, None)
                .expect("-0")
                .prix
                .to_bits(),
            0f64.to_bits()
        );
        assert_eq!(
            NewItem::parse(br#"{"nom":"x","prix":1.5e3}"#, None)
                .expect("exponent")
                .prix,
            1500.0
        );
        assert!(NewItem::parse(br#"{"id":4,"nom":"x","prix":1}"#, Some(4)).is_ok());
    }
}
