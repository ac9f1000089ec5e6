//! The staff console, served at `/console/`: static pages written by hand,
//! compiled into the gateway, loading nothing from anywhere else (kitchens
//! are often offline). The pages call the platform's API through this
//! gateway with the staff token they were given: the kitchen display, and
//! for operators the live events, the consumer groups with their dead
//! letters, and the sagas ([`crate::operator`], the order service's
//! `/api/v1/sagas`).

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Each file of the console: its path under `/console/`, its type, its text.
const FILES: &[(&str, &str, &str)] = &[
    ("", "text/html; charset=utf-8", include_str!("../console/index.html")),
    ("style.css", "text/css; charset=utf-8", include_str!("../console/style.css")),
    ("js/app.js", "text/javascript; charset=utf-8", include_str!("../console/js/app.js")),
    ("js/api.js", "text/javascript; charset=utf-8", include_str!("../console/js/api.js")),
    ("js/feed.js", "text/javascript; charset=utf-8", include_str!("../console/js/feed.js")),
    ("js/view.js", "text/javascript; charset=utf-8", include_str!("../console/js/view.js")),
    ("js/kitchen.js", "text/javascript; charset=utf-8", include_str!("../console/js/kitchen.js")),
    ("js/events.js", "text/javascript; charset=utf-8", include_str!("../console/js/events.js")),
    ("js/groups.js", "text/javascript; charset=utf-8", include_str!("../console/js/groups.js")),
    ("js/sagas.js", "text/javascript; charset=utf-8", include_str!("../console/js/sagas.js")),
];

/// Only this origin: no script, style, image or connection elsewhere.
const POLICY: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console's routes.
pub fn router() -> Router {
    let mut router = Router::new().route("/console", get(|| async { Redirect::permanent("/console/") }));
    for (path, content_type, text) in FILES {
        router = router.route(&format!("/console/{path}"), get(move || async move { file(content_type, text) }));
    }
    router
}

fn file(content_type: &'static str, text: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (StatusCode::OK, headers, text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_and_stylesheet_the_pages_load_is_served_and_nothing_comes_from_elsewhere() {
        let served: Vec<String> = FILES.iter().map(|(path, ..)| format!("/console/{path}")).collect();
        for (path, _, text) in FILES {
            for quote in ['"', '\''] {
                for reference in
                    text.split(quote).filter(|part| part.starts_with("/console/") || part.starts_with("./"))
                {
                    let absolute = match reference.strip_prefix("./") {
                        Some(relative) => format!("/console/js/{relative}"),
                        None => reference.to_owned(),
                    };
                    if absolute.ends_with(".js") || absolute.ends_with(".css") {
                        assert!(served.contains(&absolute), "{path} loads {absolute}, which is not served");
                    }
                }
            }
            assert!(!text.contains("http://") && !text.contains("https://"), "{path} names another origin");
        }
    }
}
