//! Which service serves which path: the routes table, in one place.

use crate::connections::Connections;
use crate::route_metrics::RouteMetrics;
use crate::settings::GatewaySettings;
use anyhow::Context;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri};
use service_kit::catalog;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A service behind the gateway.
#[derive(Debug)]
pub struct Upstream {
    /// Its name, as problems and metrics call it (`menu-service`).
    pub name: &'static str,
    /// `http` (TLS to upstreams is not supported).
    pub scheme: Scheme,
    /// Host and port.
    pub authority: Authority,
    /// The `Host` header of requests to it: its host and port.
    pub host: HeaderValue,
    /// Requests this worker may have in flight to it at once; more wait
    /// their turn (within the upstream timeout).
    pub in_flight: Semaphore,
    /// This worker's keep-alive connections to it.
    pub connections: Arc<Connections>,
}

impl Upstream {
    fn parse(name: &'static str, url: &str, max_in_flight: usize, connect_timeout: Duration) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("{name}'s URL {url:?}"))?;
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
        anyhow::ensure!(scheme == Scheme::HTTP, "{name}'s URL {url:?}: only http:// upstreams are supported");
        let authority = uri.authority().cloned().with_context(|| format!("{name}'s URL {url:?} has no host"))?;
        let host = HeaderValue::from_str(authority.as_str())?;
        let max_in_flight = max_in_flight.max(1);
        let connections = Arc::new(Connections::new(&authority, connect_timeout, max_in_flight));
        Ok(Self { name, scheme, authority, host, in_flight: Semaphore::new(max_in_flight), connections })
    }

    /// The URL of `path_and_query` on this upstream.
    ///
    /// # Errors
    /// `path_and_query` is not a valid URI path.
    pub fn url(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

/// A path prefix and the service behind it.
#[derive(Debug, Clone)]
pub struct Route {
    /// Matches this path and everything below it (`/api/v1/menus`, `/api/v1/menus/…`).
    pub prefix: &'static str,
    /// Who serves it.
    pub upstream: Arc<Upstream>,
    /// Its request count and latency.
    pub metrics: Arc<RouteMetrics>,
}

impl Route {
    fn new(prefix: &'static str, upstream: &Arc<Upstream>) -> Self {
        Self { prefix, upstream: upstream.clone(), metrics: Arc::new(RouteMetrics::new(prefix)) }
    }
}

/// Every route of the platform.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<Route>,
    upstreams: Vec<Arc<Upstream>>,
}

impl Routes {
    /// The routes of every service in [`catalog::SERVICES`], at the
    /// upstream URLs of `settings`.
    ///
    /// # Errors
    /// An upstream URL is invalid.
    pub fn new(settings: &GatewaySettings) -> anyhow::Result<Self> {
        let mut routes = Vec::new();
        let mut upstreams = Vec::new();
        for service in catalog::SERVICES {
            let url = settings.upstream_url(service);
            let upstream = Arc::new(Upstream::parse(
                service.name,
                &url,
                settings.upstream_max_in_flight,
                settings.connect_timeout(),
            )?);
            routes.extend(service.routes.iter().map(|prefix| Route::new(prefix, &upstream)));
            upstreams.push(upstream);
        }
        Ok(Self { routes, upstreams })
    }

    /// The route serving `path`, matching whole segments: `/api/v1/menus`
    /// serves `/api/v1/menus/1` but not `/api/v1/menusx`.
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|route| {
            path.strip_prefix(route.prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
        })
    }

    /// Every upstream, once.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_path_segments() -> anyhow::Result<()> {
        let routes = Routes::new(&GatewaySettings::for_upstreams("http://menu:8081", "http://127.0.0.1:8082"))?;
        let served_by = |path: &str| routes.find(path).map(|route| route.upstream.name);
        assert_eq!(served_by("/api/v1/menus"), Some("menu-service"));
        assert_eq!(served_by("/api/v1/menus/42/items"), Some("menu-service"));
        assert_eq!(served_by("/api/v1/reservations/7/confirm"), Some("reservation-service"));
        assert_eq!(served_by("/api/v1/menusx"), None);
        assert_eq!(served_by("/api/v1"), None);
        assert_eq!(served_by("/health"), None);
        assert_eq!(served_by("/api/v1/portions"), Some("inventory-service"));
        assert_eq!(served_by("/api/v1/tickets/feed"), Some("kitchen-service"));
        assert_eq!(routes.upstreams().len(), catalog::SERVICES.len());
        assert_eq!(routes.upstreams()[0].url("/api/v1/menus?x=1")?.to_string(), "http://menu:8081/api/v1/menus?x=1");
        Ok(())
    }

    #[test]
    fn upstream_urls_must_be_plain_http_with_a_host() {
        for bad in ["https://menu:8081", "not a url", "/relative"] {
            assert!(Routes::new(&GatewaySettings::for_upstreams(bad, "http://r:1")).is_err(), "{bad} accepted");
        }
    }
}
