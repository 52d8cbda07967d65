//! `/metrics`: request counts and latency histograms by route and status, build info, and the
//! optional bearer token.

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, on_both_backends};

on_both_backends!(metrics_count_and_time_requests_by_route_and_status);

/// The value of the sample line that starts with `prefix` (name plus labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_and_time_requests_by_route_and_status(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    }
    assert_eq!(
        app.get("/no/such/page?x=1").await.status(),
        StatusCode::NOT_FOUND
    );

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = res.text().await.unwrap();

    let healthz = r#"idbridge_http_requests_total{method="GET",route="/healthz",status="200"}"#;
    assert_eq!(sample(&text, healthz), Some(3.0), "{text}");
    let unmatched = r#"idbridge_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    assert_eq!(sample(&text, unmatched), Some(1.0), "{text}");
    assert!(
        !text.contains("/no/such/page"),
        "raw paths never become labels"
    );

    let count = r#"idbridge_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}"#;
    assert_eq!(sample(&text, count), Some(3.0), "{text}");
    let inf = r#"idbridge_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/healthz",status="200"}"#;
    assert_eq!(sample(&text, inf), Some(3.0), "{text}");
    assert!(text.contains("# TYPE idbridge_http_request_duration_seconds histogram"));

    let build = format!(
        r#"idbridge_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &build), Some(1.0), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn metrics_require_the_configured_bearer_token() {
    let token = "metrics-secret-0123456789";
    let app = TestApp::builder(Backend::Sqlite)
        .config(|c| c.server.metrics_token = Some(idbridge::config::Secret::new(token)))
        .spawn()
        .await
        .unwrap();
    let anonymous = app.get("/metrics").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("metrics-secret-0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    // Health endpoints stay open for probes.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}
