//! Per-route metric handles, registered once and then only incremented: the
//! proxied path does no registry look-ups and no label allocations. The
//! `method` label takes only the standard methods and `other`
//! ([`service_kit::http::METHOD_LABELS`]), so a client cannot add series by
//! inventing methods.

use metrics::{Counter, Histogram};
use service_kit::http::METHOD_LABELS;
use std::sync::OnceLock;

/// The lowest and highest HTTP status codes.
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

/// `gateway_requests_total` by method and status and `gateway_request_duration_seconds` of one route.
#[derive(Debug)]
pub struct RouteMetrics {
    route: &'static str,
    requests: Box<[OnceLock<Counter>]>,
    duration: OnceLock<Histogram>,
}

impl RouteMetrics {
    /// The metrics of the route with prefix `route`.
    pub fn new(route: &'static str) -> Self {
        let slots = STATUSES.len() * METHOD_LABELS.len();
        Self { route, requests: (0..slots).map(|_| OnceLock::new()).collect(), duration: OnceLock::new() }
    }

    /// Counts a request with `method` answered with `status` that took
    /// `seconds` to its response head.
    pub fn record(&self, method: &http::Method, status: http::StatusCode, seconds: f64) {
        let code = status.as_u16();
        let route = self.route;
        let method = service_kit::http::method_index(method);
        let slot = method * STATUSES.len() + usize::from(code.saturating_sub(*STATUSES.start()));
        let counter = self.requests.get(slot).map(|slot| {
            slot.get_or_init(|| {
                let method = METHOD_LABELS[method];
                metrics::counter!("gateway_requests_total", "route" => route, "method" => method, "status" => code.to_string())
            })
        });
        if let Some(counter) = counter {
            counter.increment(1);
        }
        self.duration
            .get_or_init(|| metrics::histogram!("gateway_request_duration_seconds", "route" => route))
            .record(seconds);
    }
}
