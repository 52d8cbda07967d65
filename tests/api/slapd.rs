//! A real OpenLDAP `slapd` for tests: a temporary directory with a `slapd.conf` (core, cosine,
//! inetOrgPerson, nis, the test-only AD schema in `tests/fixtures/ldap/ad-test.schema`,
//! ppolicy, lastbind), two suffixes (`dc=example,dc=org` for OpenLDAP people and `dc=corp,dc=example`
//! for AD-like people), data loaded with `slapadd`, and `slapd -d 0` in the foreground on free
//! loopback ports for `ldap://` (StartTLS capable) and `ldaps://` with the test CA's server
//! certificate. The server is killed when the value is dropped.
//!
//! Without slapd installed the tests are skipped with a message, except under `CI=true`,
//! where that is a failure (`.ci/slapd` installs it).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bind DN tests read as: not the rootdn, so the server's size limit (500) applies and
/// only paged searches can see everyone.
pub const READER_DN: &str = "cn=reader,dc=example,dc=org";
pub const READER_PW: &str = "reader-secret";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PW: &str = "admin-secret";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

fn module_dir() -> Option<PathBuf> {
    ["/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("back_mdb.so").exists() || d.join("back_mdb.la").exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running slapd.
pub struct Slapd {
    pub ldap_url: String,
    pub ldaps_url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Slapd {
    /// Starts slapd loaded with `ldif`; `None` (after saying so) when slapd is not installed
    /// here and this is not CI.
    pub fn start(ldif: &str) -> Option<Slapd> {
        let (Some(slapd), Some(slapadd), Some(modules)) =
            (tool("slapd"), tool("slapadd"), module_dir())
        else {
            assert!(
                !ci(),
                "slapd is not installed: under CI the LDAP tests may not be skipped (run .ci/slapd)"
            );
            eprintln!(
                "skipped: slapd/slapadd are not installed (apt-get install slapd ldap-utils)"
            );
            return None;
        };
        let has_ppolicy =
            modules.join("ppolicy.so").exists() || modules.join("ppolicy.la").exists();
        assert!(
            has_ppolicy,
            "slapd's ppolicy module is missing from {}",
            modules.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let f = fixtures();
        for db in ["db1", "db2"] {
            std::fs::create_dir(d.join(db)).expect("db dir");
        }
        let conf = format!(
            r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include {f}/ad-test.schema
modulepath {modules}
moduleload back_mdb
moduleload ppolicy
moduleload lastbind
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
TLSCACertificateFile {f}/ca.pem
TLSCertificateFile {f}/server.pem
TLSCertificateKeyFile {f}/server.key

database mdb
suffix "dc=example,dc=org"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PW}
directory {d}/db1
maxsize 268435456
index objectClass eq
limits dn.exact="{READER_DN}" size.soft=500 size.hard=500 size.prtotal=unlimited
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
overlay ppolicy
overlay lastbind

database mdb
suffix "dc=corp,dc=example"
rootdn "cn=admin,dc=corp,dc=example"
rootpw {ADMIN_PW}
directory {d}/db2
maxsize 268435456
index objectClass eq
limits dn.exact="{READER_DN}" size.soft=500 size.hard=500 size.prtotal=unlimited
access to * by users read by * none
"#,
            f = f.display(),
            modules = modules.display(),
            d = d.display(),
        );
        std::fs::write(d.join("slapd.conf"), conf).expect("slapd.conf");
        std::fs::write(d.join("data.ldif"), ldif).expect("ldif");
        split_and_load(&slapadd, d, ldif);
        let port = free_port();
        let tls_port = free_port();
        let ldap_url = format!("ldap://127.0.0.1:{port}");
        let ldaps_url = format!("ldaps://127.0.0.1:{tls_port}");
        let child = Command::new(&slapd)
            .arg("-d")
            .arg("0")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(format!("{ldap_url}/ ldaps://127.0.0.1:{tls_port}/"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd starts");
        let mut s = Slapd {
            ldap_url,
            ldaps_url,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("slapd exited at start-up: {status}");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(s)
    }

    /// Applies an LDIF change record as the rootdn with `ldapmodify`.
    pub fn modify(&self, ldif: &str) {
        use std::io::Write as _;
        let ldapmodify = tool("ldapmodify").expect("ldapmodify (ldap-utils) is installed");
        let admin = if ldif.contains("dc=corp,dc=example") {
            "cn=admin,dc=corp,dc=example"
        } else {
            ADMIN_DN
        };
        let mut child = Command::new(ldapmodify)
            .args(["-x", "-H", &self.ldap_url, "-D", admin, "-w", ADMIN_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ldif.as_bytes())
            .expect("ldif written");
        let out = child.wait_with_output().expect("ldapmodify ends");
        assert!(
            out.status.success(),
            "ldapmodify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Loads each suffix's entries with its own `slapadd -b` run.
fn split_and_load(slapadd: &Path, d: &Path, ldif: &str) {
    let mut by_suffix: Vec<(&str, String)> = vec![
        ("dc=example,dc=org", String::new()),
        ("dc=corp,dc=example", String::new()),
    ];
    for record in ldif.split("\n\n").filter(|r| !r.trim().is_empty()) {
        let dn_line = record
            .lines()
            .find(|l| l.starts_with("dn:"))
            .unwrap_or_default()
            .to_ascii_lowercase();
        let slot = by_suffix
            .iter_mut()
            .find(|(s, _)| dn_line.ends_with(s))
            .unwrap_or_else(|| panic!("no suffix for {dn_line}"));
        slot.1.push_str(record.trim_matches('\n'));
        slot.1.push_str("\n\n");
    }
    for (suffix, records) in by_suffix {
        if records.is_empty() {
            continue;
        }
        let file = d.join(format!("{}.ldif", suffix.replace([',', '='], "_")));
        std::fs::write(&file, records).expect("ldif part");
        let out = Command::new(slapadd)
            .arg("-q")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-b")
            .arg(suffix)
            .arg("-l")
            .arg(&file)
            .output()
            .expect("slapadd runs");
        assert!(
            out.status.success(),
            "slapadd failed for {suffix}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
