use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter, exemplar::HistogramWithExemplars, family::Family, gauge::Gauge,
        info::Info,
    },
    registry::{Registry, Unit},
};

use super::to_classic;

fn openmetrics(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).expect("encode");
    text
}

#[test]
fn counters_are_named_with_total_and_info_is_a_gauge() {
    let mut registry = Registry::default();
    let counter = Counter::<u64>::default();
    counter.inc_by(3);
    registry.register("requests", "Requests \"seen\"", counter);
    registry.register(
        "build",
        "Build information",
        Info::new([("version", "1.2")]),
    );
    let text = to_classic(&openmetrics(&registry));
    assert_eq!(
        text,
        "# HELP requests_total Requests \"seen\".\n\
         # TYPE requests_total counter\n\
         requests_total 3\n\
         # HELP build_info Build information.\n\
         # TYPE build_info gauge\n\
         build_info{version=\"1.2\"} 1\n"
    );
}

#[test]
fn units_exemplars_and_eof_have_no_classic_form() {
    let mut registry = Registry::default();
    let histogram = HistogramWithExemplars::new([0.1, 1.0].into_iter());
    histogram.observe(
        0.05,
        Some(vec![("trace_id".to_owned(), "abc".to_owned())]),
        None,
    );
    registry.register_with_unit("latency", "Latency", Unit::Seconds, histogram);
    let source = openmetrics(&registry);
    assert!(source.contains("# {trace_id=\"abc\"} 0.05"), "{source}");
    let text = to_classic(&source);
    assert_eq!(
        text,
        "# HELP latency_seconds Latency.\n\
         # TYPE latency_seconds histogram\n\
         latency_seconds_sum 0.05\n\
         latency_seconds_count 1\n\
         latency_seconds_bucket{le=\"0.1\"} 1\n\
         latency_seconds_bucket{le=\"1.0\"} 1\n\
         latency_seconds_bucket{le=\"+Inf\"} 1\n"
    );
}

#[test]
fn label_values_keep_spaces_braces_and_hashes() {
    let mut registry = Registry::default();
    let family = Family::<Vec<(String, String)>, Gauge>::default();
    family
        .get_or_create(&vec![("path".to_owned(), "/a } # {b=\"c\"} 1".to_owned())])
        .set(7);
    registry.register("odd", "Odd labels", family);
    let text = to_classic(&openmetrics(&registry));
    assert!(
        text.contains("odd{path=\"/a } # {b=\\\"c\\\"} 1\"} 7\n"),
        "{text}"
    );
}

#[test]
fn created_samples_are_dropped_and_timestamps_become_milliseconds() {
    let source = "# HELP jobs Jobs.\n# TYPE jobs counter\njobs_total 2 1700000000.5\n\
                  jobs_created 1700000000.0\n# TYPE mystery unknown\nmystery 1\n# EOF\n";
    assert_eq!(
        to_classic(source),
        "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total 2 1700000000500\n\
         # TYPE mystery untyped\nmystery 1\n"
    );
}
