//! Unit tests of the plugin metric store: stable ids, the series cap, Envoy semantics.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::abi::Status;

fn store(max_series: usize) -> (Arc<MetricStore>, Counter) {
    let mut config = PluginConfig::new("p", "p.wasm");
    config.max_series = max_series;
    config.histogram_buckets = vec![10.0, 100.0];
    let overflowed = Counter::default();
    (
        PluginMetrics::default()
            .store(&config, overflowed.clone())
            .unwrap(),
        overflowed,
    )
}

#[test]
fn the_same_name_gets_the_same_id_and_equivalent_spellings_share_a_series() {
    let (store, _) = store(10);
    let a = store.define(MetricType::Counter, r#"orders_total{band="1"}"#);
    assert_eq!(
        store.define(MetricType::Counter, r#"orders_total{band="1"}"#),
        a
    );
    assert_eq!(
        store.define(MetricType::Counter, "band=.=1;.;orders"),
        a,
        "Istio spelling, same series"
    );
    assert_ne!(
        store.define(MetricType::Counter, r#"orders_total{band="2"}"#),
        a
    );
}

#[test]
fn defines_past_the_cap_succeed_into_one_overflow_series_and_are_counted() {
    let (store, overflowed) = store(2);
    let first = store.define(MetricType::Counter, "a");
    store.define(MetricType::Counter, "b");
    let over = store.define(MetricType::Counter, "c");
    assert_eq!(
        store.define(MetricType::Counter, "d"),
        over,
        "one overflow series per type"
    );
    assert_ne!(over, first);
    assert_eq!(overflowed.get(), 2);
    assert_eq!(store.increment(over, 5), Status::Ok);
    assert_eq!(store.get(over), Ok(5));
}

#[test]
fn metric_calls_follow_envoy_semantics() {
    let (store, _) = store(10);
    let counter = store.define(MetricType::Counter, "c");
    let gauge = store.define(MetricType::Gauge, "g");
    let histogram = store.define(MetricType::Histogram, "h");
    assert_eq!(
        store.increment(counter, 0),
        Status::BadArgument,
        "counters only go up"
    );
    assert_eq!(store.increment(counter, -1), Status::BadArgument);
    assert_eq!(
        store.record(counter, 3),
        Status::Ok,
        "record on a counter adds"
    );
    assert_eq!(store.get(counter), Ok(3));
    assert_eq!(store.increment(gauge, -4), Status::Ok);
    assert_eq!(store.get(gauge), Ok((-4i64) as u64));
    assert_eq!(store.record(gauge, 7), Status::Ok);
    assert_eq!(store.get(gauge), Ok(7));
    assert_eq!(store.record(histogram, 50), Status::Ok);
    assert_eq!(store.get(histogram), Err(Status::BadArgument));
    assert_eq!(store.increment(histogram, 1), Status::BadArgument);
    assert_eq!(store.increment(999, 1), Status::NotFound);
    assert_eq!(store.record(0, 1), Status::NotFound);
}

#[test]
fn a_family_keeps_the_type_it_was_first_defined_with() {
    let (store, overflowed) = store(10);
    store.define(MetricType::Counter, "x");
    let clash = store.define(MetricType::Gauge, "x");
    assert_eq!(overflowed.get(), 1);
    assert_eq!(store.record(clash, 1), Status::Ok);
}
