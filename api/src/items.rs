//! The `/items` and `/items/{id}` handlers: parse the request, call [`Db`](crate::db::Db),
//! count successes, answer.
//!
//! An id is a decimal integer from 1 to 2^63-1 (a `BIGSERIAL`). A path id that is not one
//! (`/items/abc`, `/items/-1`, `/items/99999999999999999999`) names no item, so it is a 404
//! like any missing item, without a database round trip.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body::Body;

use crate::{
    error::Error,
    item::NewItem,
    json::{Reply, empty, json},
    request_body::{BoxError, read_body},
    state::State,
};

/// `limit` when the query leaves it out.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest `limit` accepted.
pub const MAX_LIMIT: i64 = 1000;

/// `POST /items`: 201 with the item and `Location: /items/{id}`.
pub async fn create<B>(state: &State, headers: &HeaderMap, body: B) -> Result<Reply, Error>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let new = NewItem::parse(&read_body(headers, body).await?, None)?;
    let item = state.db.insert(&new).await?;
    state.items.created.inc();
    let mut response = json(StatusCode::CREATED, &item);
    let location = HeaderValue::from_str(&format!("/items/{}", item.id))
        .expect("a path of digits is a valid header value");
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// `GET /items?limit=&offset=`: 200 with a JSON array in id order.
pub async fn list(state: &State, query: Option<&str>) -> Result<Reply, Error> {
    let page = Page::parse(query.unwrap_or(""))?;
    let items = state.db.list(page.limit, page.offset).await?;
    state.items.read.inc_by(items.len() as u64);
    Ok(json(StatusCode::OK, &items))
}

/// `GET /items/{id}`.
pub async fn get(state: &State, raw_id: &str) -> Result<Reply, Error> {
    let id = parse_id(raw_id)?;
    let item = state
        .db
        .select(id)
        .await?
        .ok_or_else(|| not_found(raw_id))?;
    state.items.read.inc();
    Ok(json(StatusCode::OK, &item))
}

/// `PUT /items/{id}`: full replacement, 200 with the new item.
pub async fn replace<B>(
    state: &State,
    raw_id: &str,
    headers: &HeaderMap,
    body: B,
) -> Result<Reply, Error>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // Checks in order: body size (413), id syntax (404), body rules (400/422), existence
    // (404). A bad body never reaches the database, whether or not the item exists.
    let body = read_body(headers, body).await?;
    let id = parse_id(raw_id)?;
    let new = NewItem::parse(&body, Some(id))?;
    let item = state
        .db
        .update(id, &new)
        .await?
        .ok_or_else(|| not_found(raw_id))?;
    state.items.updated.inc();
    Ok(json(StatusCode::OK, &item))
}

/// `DELETE /items/{id}`: 204.
pub async fn delete(state: &State, raw_id: &str) -> Result<Reply, Error> {
    let id = parse_id(raw_id)?;
    if !state.db.delete(id).await? {
        return Err(not_found(raw_id));
    }
    state.items.deleted.inc();
    Ok(empty(StatusCode::NO_CONTENT))
}

fn not_found(raw_id: &str) -> Error {
    Error::NotFound(format!("no item with id `{raw_id}`"))
}

/// Only plain decimal digits: `i64::from_str` would also take `+7`.
fn parse_id(raw: &str) -> Result<i64, Error> {
    let id = raw
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| raw.parse::<i64>().ok())
        .flatten();
    id.filter(|id| *id >= 1).ok_or_else(|| not_found(raw))
}

/// `limit` and `offset` of a list request.
#[derive(Debug, PartialEq)]
struct Page {
    limit: i64,
    offset: i64,
}

impl Page {
    /// Reads `limit` (0 to 1000, default 100) and `offset` (≥ 0, default 0); other query
    /// parameters are ignored.
    fn parse(query: &str) -> Result<Page, Error> {
        let mut page = Page {
            limit: DEFAULT_LIMIT,
            offset: 0,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "limit" => {
                    page.limit = value
                        .parse()
                        .ok()
                        .filter(|l| (0..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            Error::BadRequest(format!(
                                "`limit` must be an integer from 0 to {MAX_LIMIT}, got `{value}`"
                            ))
                        })?;
                }
                "offset" => {
                    page.offset = value.parse().ok().filter(|o| *o >= 0).ok_or_else(|| {
                        Error::BadRequest(format!(
                            "`offset` must be a non-negative integer, got `{value}`"
                        ))
                    })?;
                }
                _ => {}
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_decimal_integers() {
        assert_eq!(parse_id("1").ok(), Some(1));
        assert_eq!(parse_id("9223372036854775807").ok(), Some(i64::MAX));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "abc",
            "1.5",
            "9223372036854775808",
            " 1",
        ] {
            assert!(matches!(parse_id(bad), Err(Error::NotFound(_))), "{bad:?}");
        }
    }

    #[test]
    fn pages_have_defaults_and_bounds() {
        assert_eq!(
            Page::parse("").ok(),
            Some(Page {
                limit: 100,
                offset: 0
            })
        );
        assert_eq!(
            Page::parse("limit=1000&offset=5&x=y").ok(),
            Some(Page {
                limit: 1000,
                offset: 5
            })
        );
        assert_eq!(
            Page::parse("limit=0").ok(),
            Some(Page {
                limit: 0,
                offset: 0
            })
        );
        for bad in [
            "limit=1001",
            "limit=-1",
            "limit=ten",
            "limit=",
            "offset=-1",
            "offset=1.5",
        ] {
            assert!(
                matches!(Page::parse(bad), Err(Error::BadRequest(_))),
                "{bad}"
            );
        }
    }
}
