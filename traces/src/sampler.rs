//! The sampling decision at the edge of a trace: a sampled parent is always followed, an
//! unsampled parent too (its trace is not ours to record), and a request without a valid parent
//! starts a new trace sampled at a ratio.

use crate::context::{SpanId, TraceId, TraceParent};

/// Our span in a sampled trace: its ids and its parent's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace.
    pub trace_id: TraceId,
    /// Our span.
    pub span_id: SpanId,
    /// The caller's span, when the trace came in with the request.
    pub parent: Option<SpanId>,
}

impl SpanContext {
    /// A span under this one, in the same trace.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: SpanId::random(),
            parent: Some(self.span_id),
        }
    }

    /// The `traceparent` to send on: this span as the parent, sampled.
    pub fn traceparent(&self) -> [u8; crate::context::TRACEPARENT_LEN] {
        TraceParent {
            trace_id: self.trace_id,
            span_id: self.span_id,
            sampled: true,
        }
        .format()
    }
}

/// What to do with one request's trace context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// `Some` when the request is sampled: the span to record and to propagate.
    pub span: Option<SpanContext>,
    /// The incoming `traceparent` was malformed: drop it and its `tracestate`.
    pub malformed: bool,
}

/// Samples new traces at a fixed ratio.
#[derive(Clone, Copy, Debug)]
pub struct Sampler {
    ratio: f64,
}

impl Sampler {
    /// Samples `ratio` (clamped to 0..=1) of the traces it starts.
    pub fn new(ratio: f64) -> Self {
        Self {
            ratio: if ratio.is_nan() {
                0.0
            } else {
                ratio.clamp(0.0, 1.0)
            },
        }
    }

    /// The ratio of new traces sampled.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The decision for a request carrying `traceparent` (or none). Allocates nothing.
    pub fn decide(&self, traceparent: Option<&[u8]>) -> Decision {
        let parent = traceparent.map(TraceParent::parse);
        match parent {
            Some(Some(parent)) => Decision {
                span: parent.sampled.then(|| SpanContext {
                    trace_id: parent.trace_id,
                    span_id: SpanId::random(),
                    parent: Some(parent.span_id),
                }),
                malformed: false,
            },
            malformed => Decision {
                span: self.sample_new().then(|| SpanContext {
                    trace_id: TraceId::random(),
                    span_id: SpanId::random(),
                    parent: None,
                }),
                malformed: malformed.is_some(),
            },
        }
    }

    fn sample_new(&self) -> bool {
        // f64 in [0, 1): a ratio of 1 always samples, 0 never.
        self.ratio > 0.0 && fastrand::f64() < self.ratio
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLED: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const UNSAMPLED: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

    #[test]
    fn a_sampled_parent_is_followed_even_at_ratio_zero() {
        let decision = Sampler::new(0.0).decide(Some(SAMPLED));
        let span = decision.span.unwrap();
        assert_eq!(
            span.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span.parent.unwrap().to_string(), "00f067aa0ba902b7");
        assert_ne!(span.span_id, span.parent.unwrap());
        let sent = span.traceparent();
        let sent = TraceParent::parse(&sent).unwrap();
        assert_eq!(
            (sent.trace_id, sent.span_id, sent.sampled),
            (span.trace_id, span.span_id, true)
        );
    }

    #[test]
    fn an_unsampled_parent_is_followed_even_at_ratio_one() {
        let decision = Sampler::new(1.0).decide(Some(UNSAMPLED));
        assert_eq!(
            decision,
            Decision {
                span: None,
                malformed: false
            }
        );
    }

    #[test]
    fn a_malformed_parent_starts_a_new_trace() {
        let decision = Sampler::new(1.0).decide(Some(b"00-zz"));
        assert!(decision.malformed);
        assert_eq!(decision.span.unwrap().parent, None);
        assert_eq!(Sampler::new(0.0).decide(Some(b"00-zz")).span, None);
    }

    #[test]
    fn new_traces_are_sampled_at_the_ratio() {
        assert!(Sampler::new(1.0).decide(None).span.is_some());
        assert!(Sampler::new(0.0).decide(None).span.is_none());
        let sampler = Sampler::new(0.25);
        let sampled = (0..20_000)
            .filter(|_| sampler.decide(None).span.is_some())
            .count();
        // 5,000 expected; 6 standard deviations (61) either side.
        assert!((4_630..=5_370).contains(&sampled), "{sampled}");
        assert_eq!(Sampler::new(f64::NAN).ratio(), 0.0);
        assert_eq!(Sampler::new(7.0).ratio(), 1.0);
    }

    #[test]
    fn a_child_keeps_the_trace_and_points_at_its_parent() {
        let root = Sampler::new(1.0).decide(None).span.unwrap();
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_eq!(child.parent, Some(root.span_id));
    }
}
