//! SCIM load benchmark (issue: SCIM throughput on 100,000 users and 5,000 groups).
//!
//! Loads `BENCH_USERS` users and `BENCH_GROUPS` groups (about 20 members each) into
//! `/scim/v2/bench` of the release binary through `POST /Bulk`, then measures with `wrk`:
//!
//! - `GET /Users?filter=userName eq "<random user>"` (`benches/scim/filter.lua`), goal ≥ 5,000
//!   req/s with p99 < 10 ms on 2 cores;
//! - `PATCH /Users/<random id>` setting `active` to false (`benches/scim/patch.lua`), goal
//!   ≥ 1,000 req/s;
//!
//! on SQLite (a temporary file), on PostgreSQL (a fresh database, dropped afterwards) and, side
//! by side, on the reference Python server `scim2-server` loaded with the same data the same way.
//! Prints Markdown tables with the figures and the ratios idbridge / scim2-server.
//!
//! Run: `.ci/bench-scim` (installs `wrk` and `scim2-server`, then runs this), or
//! `cargo bench --bench scim` with these environment variables:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_USERS` | 100000 | users to load |
//! | `BENCH_GROUPS` | 5000 | groups to load |
//! | `BENCH_SECONDS` | 10 | duration of each `wrk` run (`wrk -t2 -c32 --latency --timeout 10s`) |
//! | `BENCH_DATABASE_URL` | unset | PostgreSQL URL allowed to create databases; unset skips PostgreSQL |
//! | `SCIM2_SERVER` | unset | path of the `scim2-server` executable; unset skips the reference |
//!
//! Every run is deterministic in its data and in each wrk thread's sequence of random users.
//! Any response other than the expected status (200 for idbridge's PATCH, 2xx otherwise) is
//! reported loudly and makes the bench exit non-zero after printing the tables.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::{Value, json};

/// wrk's threads and connections, fixed so that figures compare across runs and servers.
const WRK_THREADS: u32 = 2;
const WRK_CONNECTIONS: u32 = 32;
/// wrk gives up on a request after this and leaves it out of its latency figures; well above
/// its default of 2 s so that slow answers count in p99 instead of vanishing.
const WRK_TIMEOUT: &str = "10s";
/// Seconds of filter traffic before each measurement (connection pools, caches).
const WARMUP_SECONDS: u64 = 2;
/// Largest Bulk request sent: scim2-server advertises 1000 operations and 1 MiB.
const BULK_MAX_OPERATIONS: usize = 1000;
const BULK_MAX_BYTES: usize = 1_000_000;
/// Members per group (fewer when there are fewer users).
const GROUP_MEMBERS: usize = 20;
/// Body and Bulk limits given to idbridge: comfortably above one 1 MB Bulk request.
const IDBRIDGE_BODY_LIMIT: &str = "16777216";
/// The bearer token scim2-server is started with.
const REFERENCE_TOKEN: &str = "idbridge-bench-reference-token";

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const SCIM_JSON: &str = "application/scim+json";

fn main() -> ExitCode {
    // `cargo nextest` / `cargo test --benches` list targets with `--list`: stay silent there.
    if std::env::args().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench scim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Settings {
    users: usize,
    groups: usize,
    seconds: u64,
    database_url: Option<String>,
    scim2_server: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> Result<Self> {
        fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("{name}={v:?} is not a whole number")),
                _ => Ok(default),
            }
        }
        let text = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let settings = Settings {
            users: number("BENCH_USERS", 100_000)?,
            groups: number("BENCH_GROUPS", 5_000)?,
            seconds: number("BENCH_SECONDS", 10)?,
            database_url: text("BENCH_DATABASE_URL"),
            scim2_server: text("SCIM2_SERVER").map(PathBuf::from),
        };
        ensure!(settings.users > 0, "BENCH_USERS must be at least 1");
        ensure!(settings.seconds > 0, "BENCH_SECONDS must be at least 1");
        Ok(settings)
    }
}

/// Returns whether every run went through without unexpected responses.
fn run() -> Result<bool> {
    let settings = Settings::from_env()?;
    check_wrk()?;
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/scim");
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    let bench = Bench {
        settings: &settings,
        scripts: &scripts,
        dir: dir.path(),
        runtime: &runtime,
    };

    println!(
        "SCIM benchmark: {} users, {} groups (~{GROUP_MEMBERS} members each); \
         wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{}s --latency --timeout {WRK_TIMEOUT} after a {WARMUP_SECONDS}s warm-up; \
         {} CPUs shared by wrk and the server",
        settings.users,
        settings.groups,
        settings.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    let mut outcomes: Vec<Outcome> = Vec::new();

    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    outcomes.push(bench.target("idbridge, SQLite", |b| b.idbridge(&sqlite, Box::new(()))));

    match &settings.database_url {
        Some(admin) => {
            outcomes.push(bench.target("idbridge, PostgreSQL", |b| {
                let db = PgDatabase::create(admin)?;
                let url = db.url.clone();
                b.idbridge(&url, Box::new(db))
            }));
        }
        None => println!("PostgreSQL: skipped (set BENCH_DATABASE_URL)"),
    }

    match &settings.scim2_server {
        Some(exe) => {
            outcomes.push(bench.target("scim2-server (Python, in memory)", |b| b.reference(exe)))
        }
        None => println!("scim2-server: skipped (set SCIM2_SERVER)"),
    }

    report(&outcomes);
    let clean = outcomes.iter().all(Outcome::is_clean);
    if !clean {
        println!();
        println!("!!! FAILED: some runs failed or answered unexpected statuses; see above.");
    }
    Ok(clean)
}

/// What one benchmark run needs.
struct Bench<'a> {
    settings: &'a Settings,
    scripts: &'a Path,
    dir: &'a Path,
    runtime: &'a tokio::runtime::Runtime,
}

/// A server under test, loaded and ready for wrk.
struct Loaded {
    /// `http://127.0.0.1:PORT/<SCIM base path>`.
    base: String,
    token: String,
    /// Statuses a PATCH may answer.
    patch_statuses: &'static [u16],
    load: LoadTimes,
    /// Resident memory of the server once loaded, in MB.
    rss_mb: Option<f64>,
    /// Keeps the server (and its database) alive until dropped.
    _guard: Box<dyn Send>,
}

struct LoadTimes {
    users: Duration,
    groups: Duration,
}

struct Outcome {
    label: String,
    result: Result<Measured>,
}

struct Measured {
    load: LoadTimes,
    rss_mb: Option<f64>,
    filter: WrkRun,
    patch: WrkRun,
    /// Unexpected statuses and socket errors, for the loud part of the report.
    problems: Vec<String>,
}

impl Outcome {
    fn is_clean(&self) -> bool {
        self.result.as_ref().is_ok_and(|m| m.problems.is_empty())
    }
}

impl Bench<'_> {
    fn target(&self, label: &str, start: impl FnOnce(&Self) -> Result<Loaded>) -> Outcome {
        println!();
        println!("== {label}");
        let result = start(self).and_then(|loaded| self.measure(label, loaded));
        if let Err(e) = &result {
            println!("!!! {label}: FAILED: {e:#}");
        }
        Outcome {
            label: label.to_owned(),
            result,
        }
    }

    /// Issues a token, starts `idbridge serve` on `database_url` and loads the data. `database`
    /// is dropped (after the server) once the measurements are done.
    fn idbridge(&self, database_url: &str, database: Box<dyn Send>) -> Result<Loaded> {
        let out = idbridge_command(database_url)
            .args(["token", "create", "--source", "bench", "--label", "bench"])
            .output()
            .context("cannot run `idbridge token create`")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "`idbridge token create` failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        let token = stdout
            .split_whitespace()
            .find(|w| is_token(w))
            .ok_or_else(|| anyhow!("no idb_<8hex>_<64hex> token in the output of `idbridge token create`:\n{stdout}"))?
            .to_owned();

        let server = IdbridgeServer::start(database_url)?;
        let base = format!("http://{}/scim/v2/bench", server.addr);
        let load = self.load(&base, &token)?;
        let rss_mb = rss_mb(server.child.id());
        Ok(Loaded {
            base,
            token,
            patch_statuses: &[200],
            load,
            rss_mb,
            // Fields drop in order: the server stops before its database goes.
            _guard: Box::new((server, database)),
        })
    }

    /// Starts `scim2-server` on a free port and loads the data.
    fn reference(&self, exe: &Path) -> Result<Loaded> {
        let server = ReferenceServer::start(exe)?;
        let base = format!("http://{}/v2", server.addr);
        let load = self.load(&base, REFERENCE_TOKEN)?;
        let rss_mb = rss_mb(server.child.id());
        Ok(Loaded {
            base,
            token: REFERENCE_TOKEN.to_owned(),
            // scim2-server answers every successful PATCH with 204 and no body.
            patch_statuses: &[200, 204],
            load,
            rss_mb,
            _guard: Box::new(server),
        })
    }

    fn load(&self, base: &str, token: &str) -> Result<LoadTimes> {
        let s = self.settings;
        let (ids, load) = self
            .runtime
            .block_on(load(base, token, s.users, s.groups))?;
        println!(
            "loaded {} users in {:.1} s ({:.0}/s), {} groups in {:.1} s ({:.0}/s)",
            s.users,
            load.users.as_secs_f64(),
            s.users as f64 / load.users.as_secs_f64(),
            s.groups,
            load.groups.as_secs_f64(),
            s.groups as f64 / load.groups.as_secs_f64().max(1e-9),
        );
        write_lines(&self.dir.join("names.txt"), (1..=s.users).map(user_name))?;
        write_lines(&self.dir.join("ids.txt"), ids.iter().cloned())?;
        self.runtime
            .block_on(sanity_check(base, token, &ids, s.users, s.groups))?;
        Ok(load)
    }

    fn measure(&self, label: &str, loaded: Loaded) -> Result<Measured> {
        let names = self.dir.join("names.txt");
        let ids = self.dir.join("ids.txt");
        let filter_env = [
            ("BENCH_TOKEN", loaded.token.as_str()),
            ("BENCH_NAMES_FILE", path_str(&names)?),
        ];
        let patch_env = [
            ("BENCH_TOKEN", loaded.token.as_str()),
            ("BENCH_IDS_FILE", path_str(&ids)?),
        ];
        let filter_script = self.scripts.join("filter.lua");
        let patch_script = self.scripts.join("patch.lua");

        let warmup = wrk(&filter_script, &loaded.base, WARMUP_SECONDS, &filter_env)?;
        let mut problems = warmup.problems("warm-up (filter)", &[200]);
        let filter = wrk(
            &filter_script,
            &loaded.base,
            self.settings.seconds,
            &filter_env,
        )?;
        problems.extend(filter.problems("filter", &[200]));
        println!("filter: {}", filter.summary());
        let patch = wrk(
            &patch_script,
            &loaded.base,
            self.settings.seconds,
            &patch_env,
        )?;
        problems.extend(patch.problems("PATCH", loaded.patch_statuses));
        println!("PATCH:  {}", patch.summary());
        for p in &problems {
            println!("!!! {label}: {p}");
        }
        Ok(Measured {
            load: loaded.load,
            rss_mb: loaded.rss_mb,
            filter,
            patch,
            problems,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Data

fn user_name(n: usize) -> String {
    format!("user-{n:06}@bench.example")
}

/// User `n` (1-based) as a Bulk POST.
fn user_operation(n: usize) -> Value {
    let name = user_name(n);
    json!({
        "method": "POST",
        "bulkId": format!("u{n}"),
        "path": "/Users",
        "data": {
            "schemas": [USER_SCHEMA],
            "userName": name,
            "externalId": format!("ext-{n:06}"),
            "name": { "givenName": "Bench", "familyName": format!("User{n:06}") },
            "displayName": format!("Bench User{n:06}"),
            "emails": [{ "value": name, "type": "work", "primary": true }],
            "active": true,
        },
    })
}

/// Group `n` (1-based) as a Bulk POST, with members drawn deterministically from `user_ids`.
fn group_operation(n: usize, user_ids: &[String]) -> Value {
    let members: Vec<Value> = member_indices(n, user_ids.len())
        .into_iter()
        .map(|i| json!({ "value": user_ids[i] }))
        .collect();
    json!({
        "method": "POST",
        "bulkId": format!("g{n}"),
        "path": "/Groups",
        "data": {
            "schemas": [GROUP_SCHEMA],
            "displayName": format!("group-{n:04}"),
            "externalId": format!("gext-{n:04}"),
            "members": members,
        },
    })
}

/// `GROUP_MEMBERS` distinct user indices for group `n`, from a fixed-seed splitmix64.
fn member_indices(n: usize, users: usize) -> Vec<usize> {
    let want = GROUP_MEMBERS.min(users);
    let mut state = 0x5eed_0000_u64 ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut picked = Vec::with_capacity(want);
    while picked.len() < want {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let i = (z % users as u64) as usize;
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked
}

/// Splits operations into Bulk requests of at most `BULK_MAX_OPERATIONS` operations and
/// `BULK_MAX_BYTES` bytes.
fn bulk_bodies(operations: Vec<Value>) -> Result<Vec<(Vec<u8>, Vec<String>)>> {
    let envelope = |ops: &[Value]| {
        serde_json::to_vec(&json!({ "schemas": [BULK_REQUEST], "Operations": ops }))
            .context("cannot serialise a Bulk request")
    };
    let overhead = envelope(&[])?.len();
    let mut bodies = Vec::new();
    let mut batch: Vec<Value> = Vec::new();
    let mut size = overhead;
    let flush = |batch: &mut Vec<Value>, bodies: &mut Vec<(Vec<u8>, Vec<String>)>| -> Result<()> {
        if !batch.is_empty() {
            let bulk_ids = batch
                .iter()
                .map(|op| op["bulkId"].as_str().unwrap_or_default().to_owned())
                .collect();
            bodies.push((envelope(batch)?, bulk_ids));
            batch.clear();
        }
        Ok(())
    };
    for op in operations {
        let len = serde_json::to_vec(&op)?.len() + 1;
        ensure!(
            overhead + len <= BULK_MAX_BYTES,
            "one operation is larger than a whole Bulk request"
        );
        if batch.len() == BULK_MAX_OPERATIONS || size + len > BULK_MAX_BYTES {
            flush(&mut batch, &mut bodies)?;
            size = overhead;
        }
        size += len;
        batch.push(op);
    }
    flush(&mut batch, &mut bodies)?;
    Ok(bodies)
}

// ---------------------------------------------------------------------------------------------
// Loading over HTTP

fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .context("cannot build the HTTP client")
}

/// Loads users then groups through `/Bulk`, one request at a time; returns the user ids in
/// user order and the time each part took.
async fn load(
    base: &str,
    token: &str,
    users: usize,
    groups: usize,
) -> Result<(Vec<String>, LoadTimes)> {
    let client = client()?;
    let operations = (1..=users).map(user_operation).collect();
    let (mut created, users_took) = send_all(&client, base, token, "users", operations).await?;
    let ids = (1..=users)
        .map(|n| {
            created
                .remove(&format!("u{n}"))
                .ok_or_else(|| anyhow!("the Bulk responses gave no id for user {n}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let operations = (1..=groups).map(|n| group_operation(n, &ids)).collect();
    let (_, groups_took) = send_all(&client, base, token, "groups", operations).await?;
    Ok((
        ids,
        LoadTimes {
            users: users_took,
            groups: groups_took,
        },
    ))
}

/// Sends `operations` in Bulk requests one after the other, printing progress every ten
/// requests and the rate of the first and the last request (to see whether loading slows down
/// as the data grows). Returns `bulkId → id` and the time taken.
async fn send_all(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    what: &str,
    operations: Vec<Value>,
) -> Result<(HashMap<String, String>, Duration)> {
    let total = operations.len();
    let started = Instant::now();
    let mut created = HashMap::with_capacity(total);
    let mut rates = Vec::new();
    let bodies = bulk_bodies(operations)?;
    let requests = bodies.len();
    for (i, (body, bulk_ids)) in bodies.into_iter().enumerate() {
        let sent = Instant::now();
        bulk(client, base, token, body, &bulk_ids, &mut created).await?;
        rates.push(bulk_ids.len() as f64 / sent.elapsed().as_secs_f64());
        if (i + 1) % 10 == 0 && i + 1 < requests {
            println!(
                "  {what}: {}/{total} after {:.0} s",
                created.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    if let (Some(first), Some(last)) = (rates.first(), rates.last()) {
        println!(
            "  {what}: {requests} Bulk requests; first {first:.0} operations/s, last {last:.0} operations/s"
        );
    }
    Ok((created, started.elapsed()))
}

/// Sends one Bulk request and records `bulkId → id` for every created resource; any operation
/// that did not answer 201 is an error.
async fn bulk(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    body: Vec<u8>,
    bulk_ids: &[String],
    created: &mut HashMap<String, String>,
) -> Result<()> {
    let url = format!("{base}/Bulk");
    let response = client
        .post(&url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, SCIM_JSON)
        .header(reqwest::header::ACCEPT, SCIM_JSON)
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url} failed"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("POST {url}: cannot read the response"))?;
    ensure!(
        status.as_u16() == 200,
        "POST {url} answered {status}: {}",
        clip(&text)
    );
    let answer: Value = serde_json::from_str(&text)
        .with_context(|| format!("POST {url}: the answer is not JSON: {}", clip(&text)))?;
    let operations = answer["Operations"]
        .as_array()
        .ok_or_else(|| anyhow!("POST {url}: no Operations in the answer: {}", clip(&text)))?;
    let mut failures = Vec::new();
    for op in operations {
        let code = match &op["status"] {
            Value::String(s) => s.parse::<u16>().ok(),
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            _ => None,
        };
        let bulk_id = op["bulkId"].as_str().unwrap_or("?");
        let id = op["location"]
            .as_str()
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .filter(|id| !id.is_empty());
        match (code, id) {
            (Some(201), Some(id)) => {
                created.insert(bulk_id.to_owned(), id.to_owned());
            }
            _ => failures.push(format!("{bulk_id}: {}", clip(&op.to_string()))),
        }
    }
    if !failures.is_empty() {
        bail!(
            "POST {url}: {} of {} operations failed, e.g. {}",
            failures.len(),
            operations.len(),
            failures[..failures.len().min(3)].join("; ")
        );
    }
    let missing = bulk_ids
        .iter()
        .filter(|b| !created.contains_key(*b))
        .count();
    ensure!(
        missing == 0,
        "POST {url}: {missing} of {} operations are missing from the answer",
        bulk_ids.len()
    );
    Ok(())
}

/// Checks that the data is there and that the requests wrk sends are answered as expected.
async fn sanity_check(
    base: &str,
    token: &str,
    ids: &[String],
    users: usize,
    groups: usize,
) -> Result<()> {
    let client = client()?;
    let get = |path: &str, query: Vec<(&'static str, String)>| {
        let url = format!("{base}{path}");
        let client = client.clone();
        async move {
            let response = client
                .get(&url)
                .bearer_auth(token)
                .header(reqwest::header::ACCEPT, SCIM_JSON)
                .query(&query)
                .send()
                .await
                .with_context(|| format!("GET {url} failed"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            ensure!(
                status.as_u16() == 200,
                "GET {url} {query:?} answered {status}: {}",
                clip(&text)
            );
            serde_json::from_str::<Value>(&text)
                .with_context(|| format!("GET {url}: the answer is not JSON: {}", clip(&text)))
        }
    };
    for (path, want) in [("/Users", users), ("/Groups", groups)] {
        let list = get(path, vec![("count", "1".into())]).await?;
        ensure!(
            list["totalResults"].as_u64() == Some(want as u64),
            "GET {path}?count=1: expected totalResults {want}, got {}",
            list["totalResults"]
        );
    }
    let last = users;
    let found = get(
        "/Users",
        vec![("filter", format!("userName eq \"{}\"", user_name(last)))],
    )
    .await?;
    let got = found["Resources"][0]["id"].as_str().unwrap_or_default();
    ensure!(
        found["totalResults"].as_u64() == Some(1) && got == ids[last - 1],
        "filtering on {} found {} (expected the single id {})",
        user_name(last),
        clip(&found.to_string()),
        ids[last - 1]
    );
    if groups > 0 {
        let group = get(
            "/Groups",
            vec![("filter", "displayName eq \"group-0001\"".into())],
        )
        .await?;
        let members = group["Resources"][0]["members"]
            .as_array()
            .map_or(0, Vec::len);
        ensure!(
            members == GROUP_MEMBERS.min(users),
            "group-0001 has {members} members, expected {}: {}",
            GROUP_MEMBERS.min(users),
            clip(&group.to_string())
        );
    }
    Ok(())
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Servers

/// `idbridge` with the bench's environment: one SCIM source `bench` and limits out of the way.
fn idbridge_command(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_idbridge"));
    // Only the settings below: nothing from the caller's IDBRIDGE_* environment.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("IDBRIDGE_") {
            command.env_remove(key);
        }
    }
    command
        .env("IDBRIDGE_DATABASE__URL", database_url)
        .env("IDBRIDGE_SOURCES__BENCH__KIND", "scim")
        .env("IDBRIDGE_SCIM__RATE_LIMIT_PER_SECOND", "1000000")
        .env("IDBRIDGE_SCIM__RATE_LIMIT_BURST", "1000000")
        .env("IDBRIDGE_SCIM__BULK_MAX_PAYLOAD_BYTES", IDBRIDGE_BODY_LIMIT)
        .env("IDBRIDGE_SERVER__BODY_LIMIT_BYTES", IDBRIDGE_BODY_LIMIT)
        .env("IDBRIDGE_SERVER__REQUEST_TIMEOUT_SECS", "900")
        .env("IDBRIDGE_LOG__FORMAT", "text")
        // Warnings only, but keep the start-up line that names the port.
        .env("IDBRIDGE_LOG__FILTER", "warn,idbridge::app=info")
        .stdin(Stdio::null());
    command
}

struct IdbridgeServer {
    child: Child,
    addr: SocketAddr,
}

impl IdbridgeServer {
    fn start(database_url: &str) -> Result<Self> {
        let mut child = idbridge_command(database_url)
            .arg("serve")
            .env("IDBRIDGE_SERVER__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start `idbridge serve`")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let lines = forward_lines(stderr, "idbridge");
        let mut server = IdbridgeServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        server.addr = wait_for_line(&lines, "listening on http://", "idbridge serve")?
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .context("no address in idbridge's `listening on` line")?;
        Ok(server)
    }
}

impl Drop for IdbridgeServer {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

struct ReferenceServer {
    child: Child,
    addr: SocketAddr,
}

impl ReferenceServer {
    fn start(exe: &Path) -> Result<Self> {
        // scim2-server cannot report a port it chose itself: take a free one.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free port")?
            .port();
        let mut child = Command::new(exe)
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
            .args(["--bearer-token", REFERENCE_TOKEN])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // wsgiref writes one line per request there; it would only slow both sides.
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let lines = forward_lines(stdout, "scim2-server");
        let server = ReferenceServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        wait_for_line(&lines, "Serving SCIM on", "scim2-server")?;
        Ok(server)
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Reads `from` line by line on a thread: lines go to the returned channel, and the first
/// few are echoed (a server's warnings belong in the bench output).
fn forward_lines(
    from: impl std::io::Read + Send + 'static,
    name: &'static str,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, line) in BufReader::new(from)
            .lines()
            .map_while(Result::ok)
            .enumerate()
        {
            if n < 20 {
                eprintln!("[{name}] {line}");
            } else if n == 20 {
                eprintln!("[{name}] (further output not shown)");
            }
            // The receiver is gone once the server is up; keep draining the pipe regardless.
            let _ = tx.send(line);
        }
    });
    rx
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str, what: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(line),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("{what} printed no `{needle}` line within 60 s")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("{what} exited before printing `{needle}` (its output is above)")
            }
        }
    }
}

/// SIGTERM, then SIGKILL if the process is still there after 10 s.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn rss_mb(pid: u32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|kb| kb / 1024.0)
}

/// A fresh PostgreSQL database, dropped when this is dropped.
struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create(admin: &str) -> Result<Self> {
        let name = format!("idbridge_bench_scim_{}", std::process::id());
        psql(
            admin,
            &format!("drop database if exists {name} with (force)"),
        )?;
        psql(admin, &format!("create database {name}"))?;
        let mut url = url::Url::parse(admin).context("BENCH_DATABASE_URL is not a URL")?;
        url.set_path(&name);
        Ok(PgDatabase {
            admin: admin.to_owned(),
            name,
            url: url.to_string(),
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("drop database if exists {} with (force)", self.name);
        if let Err(e) = psql(&self.admin, &sql) {
            eprintln!("bench scim: warning: could not drop {}: {e:#}", self.name);
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args([url, "-qtAc", sql])
        .stdin(Stdio::null())
        .output()
        .context("cannot run psql (apt-get install postgresql-client)")?;
    ensure!(
        out.status.success(),
        "psql failed on `{sql}`: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn is_token(word: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut parts = word.split('_');
    parts.next() == Some("idb")
        && parts.next().is_some_and(|p| hex(p, 8))
        && parts.next().is_some_and(|p| hex(p, 64))
        && parts.next().is_none()
}

// ---------------------------------------------------------------------------------------------
// wrk

fn check_wrk() -> Result<()> {
    match Command::new("wrk").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(e) => bail!("cannot run wrk ({e}): apt-get install wrk, or use .ci/bench-scim"),
    }
}

/// What one wrk run reported.
struct WrkRun {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// wrk's own "Non-2xx or 3xx responses" count.
    non_2xx: u64,
    /// Socket errors: connect, read, write, timeout.
    socket_errors: [u64; 4],
    /// Responses by status, counted by the Lua scripts.
    statuses: BTreeMap<u16, u64>,
}

impl WrkRun {
    fn summary(&self) -> String {
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(code, n)| format!("{code}×{n}"))
            .collect();
        format!(
            "{:.0} req/s, p50 {}, p99 {}; statuses {}; non-2xx {}; socket errors {:?}",
            self.requests_per_sec,
            ms(self.p50_ms),
            ms(self.p99_ms),
            statuses.join(" "),
            self.non_2xx,
            self.socket_errors
        )
    }

    /// Everything other than `expected` statuses and a clean run.
    fn problems(&self, what: &str, expected: &[u16]) -> Vec<String> {
        let mut out = Vec::new();
        if self.non_2xx > 0 {
            out.push(format!("{what}: {} NON-2xx RESPONSES (wrk)", self.non_2xx));
        }
        let unexpected: Vec<String> = self
            .statuses
            .iter()
            .filter(|(code, _)| !expected.contains(code))
            .map(|(code, n)| format!("{code}×{n}"))
            .collect();
        if !unexpected.is_empty() {
            out.push(format!(
                "{what}: UNEXPECTED STATUSES {} (expected only {expected:?})",
                unexpected.join(" ")
            ));
        }
        if self.statuses.values().sum::<u64>() == 0 {
            out.push(format!("{what}: no response was counted"));
        }
        if self.socket_errors.iter().any(|n| *n > 0) {
            let [c, r, w, t] = self.socket_errors;
            out.push(format!(
                "{what}: SOCKET ERRORS connect {c}, read {r}, write {w}, timeout {t} \
                 (timeouts: no answer within {WRK_TIMEOUT}, left out of the latency figures)"
            ));
        }
        out
    }
}

fn wrk(script: &Path, url: &str, seconds: u64, env: &[(&str, &str)]) -> Result<WrkRun> {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{WRK_CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .args(["--timeout", WRK_TIMEOUT])
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().context("cannot run wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "wrk {} failed ({}):\n{stdout}{stderr}",
        script.display(),
        out.status
    );
    parse_wrk(&stdout).with_context(|| {
        format!(
            "unexpected output from wrk {}:\n{stdout}{stderr}",
            script.display()
        )
    })
}

fn parse_wrk(text: &str) -> Result<WrkRun> {
    let line = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let requests_per_sec = line("Requests/sec:")
        .and_then(|v| v.parse::<f64>().ok())
        .context("no `Requests/sec:` line")?;
    let p50_ms = line("50%")
        .and_then(duration_ms)
        .context("no 50% latency line (was --latency passed?)")?;
    let p99_ms = line("99%")
        .and_then(duration_ms)
        .context("no 99% latency line")?;
    let non_2xx = match line("Non-2xx or 3xx responses:") {
        Some(v) => v.parse().context("bad Non-2xx count")?,
        None => 0,
    };
    let mut socket_errors = [0; 4];
    if let Some(v) = line("Socket errors:") {
        for (slot, part) in socket_errors.iter_mut().zip(v.split(',')) {
            *slot = part
                .split_whitespace()
                .last()
                .and_then(|n| n.parse().ok())
                .context("bad Socket errors line")?;
        }
    }
    let mut statuses = BTreeMap::new();
    for l in text.lines() {
        if let Some(rest) = l.trim().strip_prefix("bench-status ") {
            let mut parts = rest.split_whitespace();
            let code = parts.next().and_then(|c| c.parse().ok());
            let n = parts.next().and_then(|n| n.parse().ok());
            match (code, n) {
                (Some(code), Some(n)) => {
                    statuses.insert(code, n);
                }
                _ => bail!("bad bench-status line `{l}`"),
            }
        }
    }
    Ok(WrkRun {
        requests_per_sec,
        p50_ms,
        p99_ms,
        non_2xx,
        socket_errors,
        statuses,
    })
}

/// wrk's durations: `512.00us`, `1.23ms`, `2.01s`, `1.00m`, `1.00h`.
fn duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let factor = match &text[split..] {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(value * factor)
}

// ---------------------------------------------------------------------------------------------
// Report

/// One figure of a run, for the ratio table.
type Measure = fn(&Measured) -> f64;

fn report(outcomes: &[Outcome]) {
    println!();
    println!("| backend | filter req/s | filter p99 | patch req/s | patch p99 | load time |");
    println!("|---|---|---|---|---|---|");
    for o in outcomes {
        match &o.result {
            Ok(m) => println!(
                "| {} | {} | {} | {} | {} | {} |",
                o.label,
                thousands(m.filter.requests_per_sec),
                ms(m.filter.p99_ms),
                thousands(m.patch.requests_per_sec),
                ms(m.patch.p99_ms),
                secs(m.load.users + m.load.groups),
            ),
            Err(_) => println!("| {} | failed | | | | |", o.label),
        }
    }

    println!();
    println!(
        "| backend | filter p50 | patch p50 | load: users / groups | RSS after load | statuses (filter; patch) |"
    );
    println!("|---|---|---|---|---|---|");
    for o in outcomes {
        if let Ok(m) = &o.result {
            let statuses = |r: &WrkRun| {
                r.statuses
                    .iter()
                    .map(|(c, n)| format!("{c}×{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "| {} | {} | {} | {} / {} | {} | {}; {}{} |",
                o.label,
                ms(m.filter.p50_ms),
                ms(m.patch.p50_ms),
                secs(m.load.users),
                secs(m.load.groups),
                m.rss_mb
                    .map_or_else(|| "n/a".into(), |mb| format!("{mb:.0} MB")),
                statuses(&m.filter),
                statuses(&m.patch),
                if m.problems.is_empty() {
                    String::new()
                } else {
                    " **— PROBLEMS, see above**".into()
                },
            );
        }
    }

    let reference = outcomes
        .iter()
        .find(|o| o.label.starts_with("scim2-server"))
        .and_then(|o| o.result.as_ref().ok());
    let ours: Vec<(&str, &Measured)> = outcomes
        .iter()
        .filter(|o| o.label.starts_with("idbridge"))
        .filter_map(|o| o.result.as_ref().ok().map(|m| (o.label.as_str(), m)))
        .collect();
    if let Some(r) = reference
        && !ours.is_empty()
    {
        println!();
        print!("| ratio idbridge / scim2-server |");
        for (label, _) in &ours {
            print!(" {label} |");
        }
        println!();
        println!("|---|{}", "---|".repeat(ours.len()));
        let rows: [(&str, Measure); 5] = [
            ("filter req/s (higher is better)", |m| {
                m.filter.requests_per_sec
            }),
            ("filter p99 (lower is better)", |m| m.filter.p99_ms),
            ("patch req/s (higher is better)", |m| {
                m.patch.requests_per_sec
            }),
            ("patch p99 (lower is better)", |m| m.patch.p99_ms),
            ("load time (lower is better)", |m| {
                (m.load.users + m.load.groups).as_secs_f64()
            }),
        ];
        for (name, get) in rows {
            print!("| {name} |");
            for (_, m) in &ours {
                let theirs = get(r);
                if theirs > 0.0 {
                    print!(" {:.2}× |", get(m) / theirs);
                } else {
                    print!(" n/a |");
                }
            }
            println!();
        }
    }

    if !ours.is_empty() {
        println!();
        println!(
            "Goals (at 100,000 users / 5,000 groups on 2 cores): filter ≥ 5,000 req/s with p99 < 10 ms; PATCH ≥ 1,000 req/s."
        );
        for (label, m) in &ours {
            let filter_ok = m.filter.requests_per_sec >= 5000.0 && m.filter.p99_ms < 10.0;
            let patch_ok = m.patch.requests_per_sec >= 1000.0;
            println!(
                "- {label}: filter {}, PATCH {}",
                if filter_ok { "met" } else { "NOT met" },
                if patch_ok { "met" } else { "NOT met" },
            );
        }
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| anyhow!("{} is not UTF-8", path.display()))
}

fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(400).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
