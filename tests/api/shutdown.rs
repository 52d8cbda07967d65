//! Graceful shutdown: in-flight requests finish, then the server stops; SIGTERM does the same
//! for the real binary.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;

use crate::helpers::{Backend, ServeProcess, TestApp, TestDb, binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_after_shutdown_begins() {
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let entered = std::sync::Mutex::new(Some(entered_tx));
    let entered = std::sync::Arc::new(entered);
    let routes = Router::new().route(
        "/test/slow",
        get(move || {
            let entered = entered.clone();
            async move {
                if let Some(tx) = entered.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
                "done"
            }
        }),
    );
    let app = TestApp::builder(Backend::Sqlite)
        .routes(routes)
        .spawn()
        .await
        .unwrap();
    let client = app.client.clone();
    let url = app.url("/test/slow");
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    entered_rx.await.expect("handler started");

    let addr = app.addr;
    app.begin_shutdown();
    let (result, _db) = app.stop().await;
    result.expect("server stopped cleanly");

    let res = in_flight
        .await
        .unwrap()
        .expect("in-flight request answered");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "done");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_past_the_grace_period() {
    let routes = Router::new().route(
        "/test/stuck",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "never"
        }),
    );
    let app = TestApp::builder(Backend::Sqlite)
        .config(|c| {
            c.server.shutdown_grace_secs = 1;
            c.server.request_timeout_secs = 120;
        })
        .routes(routes)
        .spawn()
        .await
        .unwrap();
    let client = app.client.clone();
    let url = app.url("/test/stuck");
    let _stuck = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let (result, _db) = app.stop().await;
    result.expect("server stopped");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_binary_cleanly() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let mut cmd = binary();
    cmd.arg("serve").env("IDBRIDGE_DATABASE__URL", &db.url);
    let mut process = ServeProcess::start(cmd);
    let res = reqwest::get(format!("http://{}/readyz", process.addr))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let status = process.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; output:\n{}",
        process.output()
    );
    let out = process.output();
    assert!(out.contains("SIGTERM") && out.contains("stopped"), "{out}");
}
