//! A real OpenLDAP `slapd` for tests: a temporary directory with a `slapd.conf` (core, cosine,
//! inetOrgPerson, nis, the test-only AD schema in `tests/fixtures/ldap/ad-test.schema`,
//! ppolicy, lastbind), two suffixes (`dc=example,dc=org` for OpenLDAP people and `dc=corp,dc=example`
//! for AD-like people), data loaded with `slapadd`, and `slapd -d 0` in the foreground on free
//! loopback ports for `ldap://` (StartTLS capable) and `ldaps://` with the test CA's server
//! certificate. The server is killed when the value is dropped.
//!
//! Without slapd installed the tests are skipped with a message, except under `CI=true`,
//! where that is a failure (`.ci/slapd` installs it).

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{TimeZone, Utc};
use idbridge::config::{Secret, SourceConfig};
use idbridge::domain::SourceKind;
use idbridge::sources::ldap::decode::to_filetime;

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
        // Ports are picked free and handed to slapd, which may lose a race for them to
        // another test; slapd then exits and is started again on other ports. The pid file
        // (written only once slapd holds its listeners) says the ports answering are ours.
        for _attempt in 0..5 {
            let port = free_port();
            let tls_port = free_port();
            let ldap_url = format!("ldap://127.0.0.1:{port}");
            let ldaps_url = format!("ldaps://127.0.0.1:{tls_port}");
            let _ = std::fs::remove_file(d.join("slapd.pid"));
            let child = Command::new(&slapd)
                .arg("-d")
                .arg("0")
                .arg("-f")
                .arg(d.join("slapd.conf"))
                .arg("-h")
                .arg(format!("{ldap_url}/ {ldaps_url}/"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("slapd starts");
            let mut child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let c = child.as_mut().expect("child");
                if let Ok(Some(_)) = c.try_wait() {
                    break; // lost the ports: try again
                }
                let ours = std::fs::read_to_string(d.join("slapd.pid"))
                    .is_ok_and(|pid| pid.trim() == c.id().to_string());
                if ours
                    && TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
                {
                    return Some(Slapd {
                        ldap_url,
                        ldaps_url,
                        child: child.take().expect("child"),
                        _dir: dir,
                    });
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("slapd did not listen within 30 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("slapd exited at start-up five times (see `slapd -d 1 -f <conf>`)");
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

pub fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// Test data for both suffixes: under dc=example,dc=org the reader, `bulk` people
/// `user0000…` (entryUUID [`uuid`]`(i)`) plus alice (admin-locked), bob (locked), carol
/// (lastbind login, password `carol-secret`), dave and erin (memberOf), groups Staff
/// (groupOfNames: alice, carol, user0000–0199 and a nested group), Eng (groupOfUniqueNames:
/// carol) and devs (posixGroup: dave, carol); under dc=corp,dc=example five AD-like people
/// (ann enabled, ben disabled, cat expired, dan locked, eve enabled) and group Finance.
pub fn directory(bulk: usize) -> String {
    let mut l = String::new();
    l.push_str(
        "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: cn=reader,dc=example,dc=org\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: reader\nsn: reader\nuserPassword: reader-secret\n\n\
         dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\n",
    );
    let person = |l: &mut String, uid: &str, id: &str, extra: &str| {
        let _ = write!(
            l,
            "dn: uid={uid},ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: memberOfHolder\nuid: {uid}\ncn: {uid} Person\ngivenName: {uid}\nsn: Person\nmail: {uid}@example.org\nentryUUID: {id}\ncreateTimestamp: 20200102030405Z\nmodifyTimestamp: 20200102030405Z\n{extra}\n"
        );
    };
    person(
        &mut l,
        "alice",
        &uuid(900_001),
        "pwdAccountLockedTime: 000001010000Z\n",
    );
    person(
        &mut l,
        "bob",
        &uuid(900_002),
        "pwdAccountLockedTime: 20250101000000Z\n",
    );
    person(
        &mut l,
        "carol",
        &uuid(900_003),
        "authTimestamp: 20251001120000Z\nuserPassword: carol-secret\ndisplayName: Carol C.\nemployeeNumber: E-42\n",
    );
    person(&mut l, "dave", &uuid(900_004), "");
    person(
        &mut l,
        "erin",
        &uuid(900_005),
        "memberOf: cn=Overlay,ou=groups,dc=example,dc=org\n",
    );
    for i in 0..bulk {
        person(&mut l, &format!("user{i:04}"), &uuid(i), "");
    }
    let mut staff = String::from(
        "dn: cn=Staff,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: Staff\nmember: uid=alice,ou=people,dc=example,dc=org\nmember: UID=Carol, ou=People,dc=example,dc=org\nmember: cn=Eng,ou=groups,dc=example,dc=org\n",
    );
    for i in 0..bulk.min(200) {
        let _ = writeln!(staff, "member: uid=user{i:04},ou=people,dc=example,dc=org");
    }
    l.push_str(&staff);
    l.push('\n');
    l.push_str(
        "dn: cn=Eng,ou=groups,dc=example,dc=org\nobjectClass: groupOfUniqueNames\ncn: Eng\nuniqueMember: uid=carol,ou=people,dc=example,dc=org\n\n\
         dn: cn=devs,ou=groups,dc=example,dc=org\nobjectClass: posixGroup\ncn: devs\ngidNumber: 5000\nmemberUid: dave\nmemberUid: carol\n\n",
    );
    // AD-like entries.
    l.push_str(
        "dn: dc=corp,dc=example\nobjectClass: dcObject\nobjectClass: organization\no: Corp\ndc: corp\n\n\
         dn: ou=users,dc=corp,dc=example\nobjectClass: organizationalUnit\nou: users\n\n\
         dn: ou=groups,dc=corp,dc=example\nobjectClass: organizationalUnit\nou: groups\n\n",
    );
    let never = "9223372036854775807";
    let past = to_filetime(Utc.with_ymd_and_hms(2021, 3, 1, 0, 0, 0).unwrap());
    let future = to_filetime(Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap());
    let logon = to_filetime(Utc.with_ymd_and_hms(2025, 11, 2, 8, 30, 0).unwrap());
    let ad = [
        // (sam, guid byte, uac, accountExpires, lastLogonTimestamp, lockoutTime)
        ("ann", 1u8, "512", never, logon.as_str(), "0"),
        ("ben", 2, "514", "0", "0", "0"),
        ("cat", 3, "512", past.as_str(), logon.as_str(), "0"),
        ("dan", 4, "512", future.as_str(), "0", logon.as_str()),
        ("eve", 5, "66048", never, "-5", "0"),
    ];
    for (sam, b, uac, expires, last, lockout) in ad {
        let guid: Vec<u8> = (0..16u8)
            .map(|i| i.wrapping_mul(b).wrapping_add(b))
            .collect();
        let _ = write!(
            l,
            "dn: cn={sam},ou=users,dc=corp,dc=example\nobjectClass: inetOrgPerson\nobjectClass: user\ncn: {sam}\nsn: {sam}\nsAMAccountName: {sam}\nuserPrincipalName: {sam}@corp.example\nmail: {sam}@corp.example\nobjectGUID:: {}\nuserAccountControl: {uac}\naccountExpires: {expires}\nlastLogonTimestamp: {last}\nlockoutTime: {lockout}\nwhenCreated: 20190704101112.0Z\nwhenChanged: 20200101000000.0Z\nobjectCategory: person\nmemberOf: CN=Finance,OU=Groups,DC=corp,DC=example\n\n",
            base64::engine::general_purpose::STANDARD.encode(&guid)
        );
    }
    l.push_str(
        "dn: cn=Finance,ou=groups,dc=corp,dc=example\nobjectClass: groupOfNames\ncn: Finance\nmember: cn=ann,ou=users,dc=corp,dc=example\nmember: cn=ben,ou=users,dc=corp,dc=example\n\n",
    );
    l
}

/// A source reading dc=example,dc=org as the size-limited reader, 100 people a page.
pub fn openldap_config(url: &str) -> SourceConfig {
    let mut cfg = SourceConfig::new(SourceKind::Ldap);
    cfg.base_url = Some(url.to_owned());
    cfg.bind_dn = Some(READER_DN.into());
    cfg.bind_password = Some(Secret::new(READER_PW));
    cfg.base_dn = Some("dc=example,dc=org".into());
    cfg.page_size = Some(100);
    cfg.timeout_secs = 10;
    cfg.custom_attributes = vec!["employeeNumber".into()];
    cfg
}

/// A source reading the AD-like people under dc=corp,dc=example.
pub fn ad_config(url: &str) -> SourceConfig {
    let mut cfg = openldap_config(url);
    cfg.base_dn = Some("dc=corp,dc=example".into());
    cfg.flavour = Some("ad".into());
    cfg.group_filter = Some("(objectClass=groupOfNames)".into());
    cfg.custom_attributes = Vec::new();
    cfg
}
