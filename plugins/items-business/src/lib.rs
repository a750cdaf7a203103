//! Business metrics for the items API, as a Proxy-Wasm plugin.
//!
//! - `business_items_created_total{price_band}`: items created (`POST /items` answered 201),
//!   per price band `0-10`, `10-50`, `50-100`, `100+` (euros, lower bound inclusive).
//! - `business_revenue_cents_total`: sum of the `prix` of created items, in cents.
//! - `business_item_price_cents`: histogram of created items' prices in cents (the buckets come
//!   from the sidecar's `[[plugins]]` entry, since the ABI cannot carry them).
//! - `business_item_mutations_total{method,outcome}`: `POST /items`, `PUT /items/{id}` and
//!   `DELETE /items/{id}` by outcome `success` (1xx-3xx), `client_error` (4xx), `server_error`.
//!
//! The price is read from the created item in the response body (what the API stored); the
//! request body is the fallback when the response body was not observed. Labels travel in the
//! metric name in the Prometheus style the sidecar documents: `name{label="value"}`.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use serde::Deserialize;

mod config;
use config::Config;

const BANDS: [&str; 4] = ["0-10", "10-50", "50-100", "100+"];
const METHODS: [&str; 3] = ["POST", "PUT", "DELETE"];
const OUTCOMES: [&str; 3] = ["success", "client_error", "server_error"];

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root {
        collection: Rc::from(Config::default().collection_path),
        metrics: None,
    }));
}}

/// Metric ids, defined once per instance in `on_configure` (the host returns the same id for the
/// same name, so every instance of the plugin shares the series).
#[derive(Clone, Copy)]
struct Metrics {
    created: [u32; 4],
    revenue_cents: u32,
    price_cents: u32,
    mutations: [[u32; 3]; 3],
}

impl Metrics {
    fn define() -> Result<Self, proxy_wasm::types::Status> {
        let counter = |name: String| hostcalls::define_metric(MetricType::Counter, &name);
        let mut created = [0; 4];
        for (id, band) in created.iter_mut().zip(BANDS) {
            *id = counter(format!(
                "business_items_created_total{{price_band=\"{band}\"}}"
            ))?;
        }
        let mut mutations = [[0; 3]; 3];
        for (row, method) in mutations.iter_mut().zip(METHODS) {
            for (id, outcome) in row.iter_mut().zip(OUTCOMES) {
                *id = counter(format!(
                    "business_item_mutations_total{{method=\"{method}\",outcome=\"{outcome}\"}}"
                ))?;
            }
        }
        Ok(Metrics {
            created,
            revenue_cents: counter("business_revenue_cents_total".into())?,
            price_cents: hostcalls::define_metric(
                MetricType::Histogram,
                "business_item_price_cents",
            )?,
            mutations,
        })
    }
}

struct Root {
    /// The configured `collection_path`, shared with every request rather than copied into each.
    collection: Rc<str>,
    metrics: Option<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        match Config::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => self.collection = Rc::from(config.collection_path),
            Err(message) => {
                let _ = hostcalls::log(LogLevel::Error, &message);
                return false;
            }
        }
        self.metrics = Metrics::define().ok();
        self.metrics.is_some()
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let metrics = self.metrics?;
        Some(Box::new(Request {
            metrics,
            collection: self.collection.clone(),
            mutation: None,
            status: 0,
            request_price: None,
            response_price: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Which mutation a request is, decided from its method and path.
#[derive(Clone, Copy, PartialEq)]
enum Mutation {
    Create,
    Update,
    Delete,
}

struct Request {
    metrics: Metrics,
    collection: Rc<str>,
    mutation: Option<Mutation>,
    status: u32,
    request_price: Option<f64>,
    response_price: Option<f64>,
}

/// The only field of an item this plugin needs.
#[derive(Deserialize)]
struct Priced {
    prix: f64,
}

fn price_of(body: &[u8]) -> Option<f64> {
    serde_json::from_slice::<Priced>(body)
        .ok()
        .map(|p| p.prix)
        .filter(|p| p.is_finite() && *p >= 0.0)
}

impl Request {
    fn classify(&self, method: &str, path: &str) -> Option<Mutation> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let rest = path.strip_prefix(&*self.collection)?;
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let is_item = !rest.is_empty() && !rest.contains('/');
        match (method, rest.is_empty(), is_item) {
            ("POST", true, _) => Some(Mutation::Create),
            ("PUT", _, true) => Some(Mutation::Update),
            ("DELETE", _, true) => Some(Mutation::Delete),
            _ => None,
        }
    }
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let method = self.get_http_request_header(":method").unwrap_or_default();
        let path = self.get_http_request_header(":path").unwrap_or_default();
        self.mutation = self.classify(&method, &path);
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        if self.mutation != Some(Mutation::Create) {
            return Action::Continue;
        }
        // Pause until the body is complete: the host keeps buffering (up to its limit).
        if !eos {
            return Action::Pause;
        }
        self.request_price = self
            .get_http_request_body(0, size)
            .as_deref()
            .and_then(price_of);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let status = self.get_http_response_header(":status").unwrap_or_default();
        self.status = status.parse().unwrap_or(0);
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        if self.mutation != Some(Mutation::Create) || self.status != 201 {
            return Action::Continue;
        }
        if !eos {
            return Action::Pause;
        }
        self.response_price = self
            .get_http_response_body(0, size)
            .as_deref()
            .and_then(price_of);
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(mutation) = self.mutation else {
            return;
        };
        let outcome = match self.status {
            100..=399 => 0,
            400..=499 => 1,
            _ => 2,
        };
        let m = &self.metrics;
        let _ = hostcalls::increment_metric(m.mutations[mutation as usize][outcome], 1);
        if mutation != Mutation::Create || self.status != 201 {
            return;
        }
        let Some(price) = self.response_price.or(self.request_price) else {
            let _ = hostcalls::log(LogLevel::Warn, "created item without a readable prix");
            return;
        };
        let cents = (price * 100.0).round() as u64;
        let band = match price {
            p if p < 10.0 => 0,
            p if p < 50.0 => 1,
            p if p < 100.0 => 2,
            _ => 3,
        };
        let _ = hostcalls::increment_metric(m.created[band], 1);
        if cents > 0 {
            let _ = hostcalls::increment_metric(m.revenue_cents, cents as i64);
        }
        let _ = hostcalls::record_metric(m.price_cents, cents);
    }
}
