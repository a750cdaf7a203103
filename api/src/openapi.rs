//! The OpenAPI 3 document served at `/openapi.json`: every route, method, body and error.
//!
//! It is a hand-written file (`api/openapi.json`) rather than generated, so it reads as the
//! contract it is; the integration tests check it against [`crate::routes::ROUTES`] and the
//! api's actual answers. The sidecar loads its route templates (`/items/{id}`) from it.

/// The document, as served.
pub const DOCUMENT: &str = include_str!("../openapi.json");
