//! Middleware every route shares: body-size limit and request timeout.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, TestApp};

fn test_routes() -> Router {
    Router::new()
        .route(
            "/test/echo-length",
            post(|body: String| async move { body.len().to_string() }),
        )
        .route(
            "/test/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "finally"
            }),
        )
}

#[tokio::test]
async fn bodies_over_the_configured_limit_are_refused_with_413() {
    let app = TestApp::builder(Backend::Sqlite)
        .config(|c| c.server.body_limit_bytes = 1024)
        .routes(test_routes())
        .spawn()
        .await
        .unwrap();
    let small = app
        .client
        .post(app.url("/test/echo-length"))
        .body("x".repeat(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), StatusCode::OK);
    assert_eq!(small.text().await.unwrap(), "1000");

    let big = app
        .client
        .post(app.url("/test/echo-length"))
        .body("x".repeat(4096))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Without a Content-Length the limit still holds while a chunked body streams in.
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head =
        "POST /test/echo-length HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..8 {
        let chunk = format!("200\r\n{}\r\n", "y".repeat(512));
        if conn.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may answer and close before the body ends
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 64];
    let n = conn.read(&mut answer).await.unwrap();
    let status_line = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
}

#[tokio::test]
async fn requests_over_the_configured_time_are_answered_408() {
    let app = TestApp::builder(Backend::Sqlite)
        .config(|c| c.server.request_timeout_secs = 1)
        .routes(test_routes())
        .spawn()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let res = app.get("/test/slow").await;
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "timed out early, not after the handler"
    );
}
