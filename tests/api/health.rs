//! Liveness, readiness (failing and recovering with the database) and request ids.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{Backend, TestApp, TestDb, on_both_backends, postgres_admin_url};

on_both_backends!(
    liveness_answers_ok,
    readiness_is_ready_once_the_database_is_migrated,
    readiness_fails_until_pending_migrations_are_applied,
    every_response_carries_a_request_id,
);

async fn liveness_answers_ok(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

async fn readiness_is_ready_once_the_database_is_migrated(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

async fn readiness_fails_until_pending_migrations_are_applied(backend: Backend) {
    let Some(app) = TestApp::builder(backend)
        .config(|c| c.database.migrate_on_start = false)
        .spawn()
        .await
    else {
        return;
    };
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("not migrated"), "{reason}");

    app.store.migrate().await.unwrap();
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    // Liveness never depended on the database.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fresh = app.get("/healthz").await;
    let id = fresh.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let again = app.get("/healthz").await;
    assert_ne!(
        again.headers()["x-request-id"].to_str().unwrap(),
        id,
        "ids are unique"
    );
    let given = app
        .client
        .get(app.url("/nowhere"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.status(), StatusCode::NOT_FOUND);
    assert_eq!(given.headers()["x-request-id"], "trace-me-123");
}

/// A TCP forwarder to PostgreSQL that can be cut and restored, standing in for a database
/// outage.
struct Outage {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Outage {
    async fn start(upstream: SocketAddr) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut_rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Outage { addr, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_postgres_is_unreachable_and_recovers_after() {
    if postgres_admin_url().is_none() {
        return;
    }
    let db = TestDb::create(Backend::Postgres).await.unwrap();
    let mut url = url::Url::parse(&db.url).unwrap();
    let upstream: SocketAddr = format!(
        "{}:{}",
        url.host_str().unwrap().replace("localhost", "127.0.0.1"),
        url.port().unwrap_or(5432)
    )
    .parse()
    .unwrap();
    let outage = Outage::start(upstream).await;
    url.set_port(Some(outage.addr.port())).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    let app = TestApp::builder(Backend::Postgres)
        .config(|c| c.database.connect_timeout_secs = 1)
        .database(db)
        .database_url(url.to_string())
        .spawn()
        .await
        .unwrap();
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    outage.cut();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("unreachable"), "{reason}");
    assert_eq!(
        app.get("/healthz").await.status(),
        StatusCode::OK,
        "still alive"
    );

    outage.restore();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = app.get("/readyz").await.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "readiness recovers with the database"
    );
}
