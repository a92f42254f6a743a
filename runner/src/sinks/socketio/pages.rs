//! Where the dashboard's page comes from: the page embedded in the binary (`web/`: works
//! offline, nothing to install), or the files of a directory of the user's own (`static_dir`),
//! such as the tutorial's original page with its chart library beside it. Files are served
//! read-only from inside that directory: no path leaves it (`..`, links pointing out), no listing.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The routes of the page: the embedded one, or `dir`'s files.
pub fn routes(dir: Option<PathBuf>) -> Router {
    match dir {
        Some(dir) => {
            let dir = Arc::new(dir);
            Router::new().fallback(get(move |uri: Uri| {
                let dir = Arc::clone(&dir);
                async move { file(&dir, uri.path()).await }
            }))
        }
        None => embedded(),
    }
}

fn embedded() -> Router {
    let page = |content_type: &'static str, body: &'static str| {
        get(move || async move { asset(content_type, body.as_bytes().to_vec()) })
    };
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    Router::new()
        .route(
            "/",
            page(
                "text/html; charset=utf-8",
                include_str!("../../../../web/index.html"),
            ),
        )
        .route("/app.js", page(JS, include_str!("../../../../web/app.js")))
        .route(
            "/style.css",
            page(CSS, include_str!("../../../../web/style.css")),
        )
        .route(
            "/vendor/uPlot.iife.min.js",
            page(JS, include_str!("../../../../web/vendor/uPlot.iife.min.js")),
        )
        .route(
            "/vendor/uPlot.min.css",
            page(CSS, include_str!("../../../../web/vendor/uPlot.min.css")),
        )
        .route(
            "/vendor/socket.io.min.js",
            page(JS, include_str!("../../../../web/vendor/socket.io.min.js")),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
}

fn asset(content_type: &'static str, body: Vec<u8>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    (headers, body).into_response()
}

/// The file of `dir` at URL path `path` (`index.html` for a directory), or 404.
async fn file(dir: &Path, path: &str) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "not found").into_response();
    let Some(relative) = inside(path) else {
        return not_found();
    };
    let mut wanted = dir.join(relative);
    if wanted.is_dir() {
        wanted.push("index.html");
    }
    // Links may point anywhere: only what really lies inside the directory is served.
    let (Ok(root), Ok(real)) = (dir.canonicalize(), wanted.canonicalize()) else {
        return not_found();
    };
    if !real.starts_with(&root) {
        return not_found();
    }
    match tokio::fs::read(&real).await {
        Ok(body) => asset(content_type(&real), body),
        Err(_) => not_found(),
    }
}

/// A URL path as a relative file path, if it names something inside the directory: decoded,
/// without `.`/`..` segments, backslashes or NUL.
fn inside(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            s if s.contains('\\') || s.contains('\0') => return None,
            s => relative.push(s),
        }
    }
    Some(relative)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_would_leave_the_directory_are_refused() {
        assert_eq!(inside("/"), Some(PathBuf::new()));
        assert_eq!(
            inside("/js/echarts.min.js"),
            Some(PathBuf::from("js/echarts.min.js"))
        );
        assert_eq!(inside("/a/./b%20c"), Some(PathBuf::from("a/b c")));
        assert_eq!(inside("/../etc/passwd"), None);
        assert_eq!(inside("/a/%2e%2e/%2e%2e/etc"), None);
        assert_eq!(inside("/a%5c..%5cb"), None);
        assert_eq!(inside("/a%00"), None);
        assert_eq!(inside("/%zz"), None);
    }

    #[tokio::test]
    async fn a_directory_serves_its_files_and_nothing_outside() {
        let root = tempfile::tempdir().unwrap();
        let site = root.path().join("site");
        std::fs::create_dir(&site).unwrap();
        std::fs::write(site.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(root.path().join("secret.txt"), "no").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret.txt"), site.join("link.txt")).unwrap();
        let status = |r: &Response| r.status();
        let index = file(&site, "/").await;
        assert_eq!(status(&index), StatusCode::OK);
        assert_eq!(
            index.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(status(&file(&site, "/index.html").await), StatusCode::OK);
        assert_eq!(
            status(&file(&site, "/../secret.txt").await),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(&file(&site, "/link.txt").await),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(&file(&site, "/missing.js").await),
            StatusCode::NOT_FOUND
        );
    }
}
