//! The dashboard's Socket.IO endpoint, in process: for each input a client opens an Engine.IO
//! session (HTTP long-polling, as browsers start), posts the input as its payload (any packets:
//! connect with or without a token, events, acks, binary attachments, garbage), reads what the
//! server answers, and closes the session. The app is the one `socketio` sinks serve, with a
//! token, so the refusal path runs too; once the session is closed its client must no longer be counted.
#![no_main]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;
use weir::serve::access::Access;
use weir::sinks::socketio::server::{Dashboard, PageConfig, PanelKind, PanelView, Series, app};

struct Served {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    dashboard: Arc<Dashboard>,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let series = vec![Series {
            key: "0".into(),
            label: "zero".into(),
        }];
        let page = PageConfig {
            title: "fuzz".into(),
            points: 4,
            series: series.clone(),
            panels: vec![PanelView {
                kind: PanelKind::Line,
                title: "fuzz".into(),
                points: 4,
                series,
            }],
        };
        let (router, dashboard) = runtime.block_on(async {
            app(page, None, Access::new(Some("t0ken"), Vec::new(), 5000, 8), 16)
        });
        Served {
            runtime,
            router,
            dashboard,
        }
    })
}

async fn call(router: &axum::Router, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    (status, body.to_vec())
}

const POLLING: &str = "/socket.io/?EIO=4&transport=polling";

fuzz_target!(|data: &[u8]| {
    let served = served();
    served.runtime.block_on(async {
        let open = Request::get(POLLING).body(Body::empty()).unwrap();
        let (status, body) = call(&served.router, open).await;
        assert_eq!(status, StatusCode::OK);
        // "0{"sid":"…",…}": the session's id.
        let text = String::from_utf8_lossy(&body);
        let sid = text
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("an Engine.IO open packet")
            .to_string();
        let session = format!("{POLLING}&sid={sid}");
        let post = Request::post(&session).body(Body::from(data.to_vec())).unwrap();
        let _ = call(&served.router, post).await;
        // Collect what the server queued (if the session still stands), then close it.
        let read = Request::get(&session).body(Body::empty()).unwrap();
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            call(&served.router, read),
        )
        .await;
        let close = Request::post(&session).body(Body::from("1")).unwrap();
        let _ = call(&served.router, close).await;
        // The session is closed: whatever the input did, its client must stop being counted
        // (a leaked count locks clients out once it reaches `max_connections`).
        let connected = &served.dashboard.stats.connected;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while connected.load(Ordering::Acquire) > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a closed session is still counted as connected"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    });
});
