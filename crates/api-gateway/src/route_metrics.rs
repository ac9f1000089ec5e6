//! Per-route metric handles, registered once and then only incremented: the
//! proxied path does no registry look-ups and no label allocations.

use metrics::{Counter, Histogram};
use std::sync::OnceLock;

/// The lowest and highest HTTP status codes.
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

/// `gateway_requests_total` by status and `gateway_request_duration_seconds` of one route.
#[derive(Debug)]
pub struct RouteMetrics {
    route: &'static str,
    requests: Box<[OnceLock<Counter>]>,
    duration: OnceLock<Histogram>,
}

impl RouteMetrics {
    /// The metrics of the route with prefix `route`.
    pub fn new(route: &'static str) -> Self {
        Self { route, requests: STATUSES.map(|_| OnceLock::new()).collect(), duration: OnceLock::new() }
    }

    /// Counts a request answered with `status` that took `seconds` to its response head.
    pub fn record(&self, status: http::StatusCode, seconds: f64) {
        let code = status.as_u16();
        let route = self.route;
        let counter = self.requests.get(usize::from(code.saturating_sub(*STATUSES.start()))).map(|slot| {
            slot.get_or_init(
                || metrics::counter!("gateway_requests_total", "route" => route, "status" => code.to_string()),
            )
        });
        if let Some(counter) = counter {
            counter.increment(1);
        }
        self.duration
            .get_or_init(|| metrics::histogram!("gateway_request_duration_seconds", "route" => route))
            .record(seconds);
    }
}
