//! The dashboard's static files at `/` (built by `dashboard/`, `npm run build`) and GraphiQL's
//! page from the same build. Client-side routes fall back to `index.html`; hashed assets are
//! cached for a year; every HTML answer carries a strict Content-Security-Policy (no inline
//! script, nothing from another origin).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use std::path::{Path, PathBuf};

use crate::startup::AppState;

/// Only our own origin; WebSockets to the same host count as `'self'` in CSP 3 browsers.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Prefixes that belong to the API: an unknown path under them is a 404, never the dashboard.
const API_PREFIXES: [&str; 6] = ["/api/", "/ingest/", "/graphql", "/healthz", "/readyz", "/metrics"];

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Mini-XDR</title></head>\
<body><h1>Mini-XDR</h1><p>The dashboard (and GraphiQL, which comes with it) is not built. Build it with <code>cd dashboard &amp;&amp; npm ci &amp;&amp; \
npm run build</code> (or start with <code>./deploy/dev.sh</code>, which does), or point <code>XDR_DASHBOARD_DIR</code> \
at a built copy. The API is up: <code>/graphql</code>, <code>/api/auth/*</code>, <code>/ingest/*</code>.</p></body></html>";

fn dashboard_dir(state: &AppState) -> Option<&Path> {
    state.config.dashboard_dir.as_deref().filter(|d| d.join("index.html").is_file())
}

/// Every path the API does not route: a file of the build, or `index.html` for a client route.
pub async fn static_or_index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return HttpResponse::MethodNotAllowed().finish();
    }
    let path = req.path();
    if API_PREFIXES.iter().any(|p| path.starts_with(p) || path == p.trim_end_matches('/')) {
        return HttpResponse::NotFound().json(serde_json::json!({ "detail": "Not found" }));
    }
    let Some(dir) = dashboard_dir(&state) else {
        return html_response(StatusCode::OK, NOT_BUILT.as_bytes().to_vec(), false);
    };
    if let Some(file) = build_file(dir, path) {
        return serve_file(&req, &file).await;
    }
    // A missing hashed asset is a stale page asking for an old build: 404, not index.html.
    if path.starts_with("/assets/") {
        return HttpResponse::NotFound().finish();
    }
    serve_file(&req, &dir.join("index.html")).await
}

/// GraphiQL's page from the dashboard build (`graphiql.html`).
pub async fn graphiql_page(req: &HttpRequest, state: &AppState) -> HttpResponse {
    if !state.config.introspection {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("GraphiQL is off on this server (XDR_GRAPHQL_INTROSPECTION=false)");
    }
    match dashboard_dir(state).map(|d| d.join("graphiql.html")).filter(|f| f.is_file()) {
        Some(file) => serve_file(req, &file).await,
        None => html_response(StatusCode::OK, NOT_BUILT.as_bytes().to_vec(), false),
    }
}

/// The file under `dir` named by a URL path, when it exists; no `..`, hidden or encoded
/// segments, so nothing outside the build can be named.
fn build_file(dir: &Path, url_path: &str) -> Option<PathBuf> {
    let mut file = dir.to_path_buf();
    let mut segments = 0;
    for segment in url_path.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains(['%', '\\', '\0']) {
            return None;
        }
        file.push(segment);
        segments += 1;
    }
    (segments > 0 && file.is_file()).then_some(file)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Reads the file (or its `.gz` sibling written by the build, when the client takes gzip).
async fn serve_file(req: &HttpRequest, file: &Path) -> HttpResponse {
    let accepts_gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let gz = PathBuf::from(format!("{}.gz", file.display()));
    let precompressed = if accepts_gzip { tokio::fs::read(&gz).await.ok() } else { None };
    let (body, gzipped) = match precompressed {
        Some(body) => (Ok(body), true),
        None => (tokio::fs::read(file).await, false),
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "dashboard file unreadable");
            return HttpResponse::NotFound().finish();
        }
    };
    let kind = content_type(file);
    let hashed = file.components().any(|c| c.as_os_str() == "assets");
    let mut response = if kind.starts_with("text/html") {
        html_response(StatusCode::OK, body, gzipped)
    } else {
        let mut r = HttpResponse::Ok().content_type(kind).body(body);
        let cache = if hashed { "public, max-age=31536000, immutable" } else { "public, max-age=3600" };
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        if gzipped {
            r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// HTML is never cached (it names the current build's assets) and carries the CSP.
fn html_response(status: StatusCode, body: Vec<u8>, gzipped: bool) -> HttpResponse {
    let mut r = HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body);
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}
