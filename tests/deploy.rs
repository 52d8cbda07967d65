//! Checks that the deployment files in `deploy/` stay in step with the configuration code:
//! the example configuration loads, names every key the code knows with its environment
//! variable, and carries the built-in defaults; the Kubernetes ConfigMap's embedded
//! `idbridge.toml` loads too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use idbridge::config::{self, Config, Secret, ServerConfig};

const EXAMPLE: &str = "deploy/idbridge.example.toml";
const CONFIGMAP: &str = "deploy/kubernetes/configmap.yaml";

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    let path = repo_file(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A configuration with every optional value set, so that serialising it shows every key.
fn config_with_every_option_set() -> Config {
    Config {
        server: ServerConfig {
            metrics_token: Some(Secret::new("x".repeat(20))),
            public_url: Some("https://idbridge.example.com".into()),
            ..ServerConfig::default()
        },
        audit: config::AuditConfig {
            key: Some(Secret::new("k".repeat(32))),
            key_path: Some("audit.key".into()),
            checkpoint_file: Some("audit.checkpoint".into()),
        },
        scheduler: config::SchedulerConfig {
            timezone: Some("Europe/Berlin".into()),
            ..config::SchedulerConfig::default()
        },
        ..Config::default()
    }
}

/// Every `section.key` path of the effective configuration, from its serialised form.
fn effective_key_paths() -> BTreeSet<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => walk(&path, inner, out),
                _ => {
                    out.insert(path);
                }
            }
        }
    }
    let value = toml::Value::try_from(config_with_every_option_set())
        .expect("the configuration serialises to TOML");
    let table = value
        .as_table()
        .expect("the configuration serialises to a table");
    let mut out = BTreeSet::new();
    walk("", table, &mut out);
    out
}

/// The field names serde accepts for the table at `section` (`""` for the top level), read
/// from the error that an unknown key provokes. Independent of serialisation, so it also sees
/// optional fields that [`config_with_every_option_set`] might have forgotten to set.
fn accepted_fields(section: &str) -> BTreeSet<String> {
    const PROBE: &str = "no_such_key_for_this_test";
    let text = if section.is_empty() {
        format!("{PROBE} = 1\n")
    } else {
        format!("[{section}]\n{PROBE} = 1\n")
    };
    let message = toml::from_str::<Config>(&text)
        .expect_err("an unknown key must be rejected")
        .to_string();
    let expected = message
        .split_once("expected")
        .unwrap_or_else(|| panic!("no list of expected keys in: {message}"))
        .1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .filter(|name| name != PROBE)
        .collect()
}

/// The keys the example file sets or shows commented out, by section: `key = …` or
/// `# key = …` lines below an (uncommented) `[section]` header.
fn documented_keys(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        let assignment = line.strip_prefix('#').map(str::trim_start).unwrap_or(line);
        let Some((key, _)) = assignment.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let is_bare_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if is_bare_key {
            out.entry(section.clone())
                .or_default()
                .insert(key.to_owned());
        }
    }
    out
}

/// `server.metrics_token` → `IDBRIDGE_SERVER__METRICS_TOKEN`.
fn env_var(path: &str) -> String {
    format!(
        "{}{}",
        config::ENV_PREFIX,
        path.to_ascii_uppercase().replace('.', "__")
    )
}

/// The block of more-indented lines after `idbridge.toml: |` in the ConfigMap, dedented.
fn configmap_toml(yaml: &str) -> String {
    let mut lines = yaml.lines();
    let header = lines
        .by_ref()
        .find(|l| l.trim_start().starts_with("idbridge.toml: |"))
        .expect("the ConfigMap has an `idbridge.toml: |` block");
    let header_indent = header.len() - header.trim_start().len();
    let mut block: Vec<&str> = Vec::new();
    let mut indent = None;
    for line in lines {
        if line.trim().is_empty() {
            block.push("");
            continue;
        }
        let this_indent = line.len() - line.trim_start().len();
        if this_indent <= header_indent {
            break;
        }
        let indent = *indent.get_or_insert(this_indent);
        assert!(
            this_indent >= indent,
            "line less indented than the block's first line: {line:?}"
        );
        block.push(&line[indent..]);
    }
    assert!(
        block.iter().any(|l| !l.is_empty()),
        "the idbridge.toml block is empty"
    );
    let mut text = block.join("\n");
    text.push('\n');
    text
}

#[test]
fn the_example_configuration_loads() {
    let path = repo_file(EXAMPLE);
    let loaded = config::load(Some(path.as_path()));
    assert!(
        loaded.is_ok(),
        "{EXAMPLE} does not load: {}",
        loaded.err().map(|e| e.to_string()).unwrap_or_default()
    );
}

#[test]
fn the_key_list_these_tests_use_covers_every_field_serde_accepts() {
    // A map of tables inside a section (`safety.budgets.<kind>.…`) is one accepted field.
    let paths: BTreeSet<String> = effective_key_paths()
        .into_iter()
        .map(|p| p.splitn(3, '.').take(2).collect::<Vec<_>>().join("."))
        .collect();
    let sections = accepted_fields("");
    let mut accepted = BTreeSet::new();
    for section in &sections {
        for field in accepted_fields(section) {
            accepted.insert(format!("{section}.{field}"));
        }
    }
    assert!(
        accepted.len() > sections.len(),
        "found no fields in {sections:?}"
    );
    assert_eq!(
        paths, accepted,
        "set every new Option field in config_with_every_option_set()"
    );
}

#[test]
fn every_configuration_key_appears_in_the_example_under_its_section() {
    let documented = documented_keys(&read(EXAMPLE));
    let missing: Vec<String> = effective_key_paths()
        .into_iter()
        .filter(|path| {
            let (section, key) = path.rsplit_once('.').expect("keys live in sections");
            !documented
                .get(section)
                .is_some_and(|keys| keys.contains(key))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{EXAMPLE} lacks `key = …` or `# key = …` lines for: {missing:?}"
    );
}

#[test]
fn every_configuration_key_has_its_environment_variable_named_in_the_example() {
    let text = read(EXAMPLE);
    let missing: Vec<String> = effective_key_paths()
        .iter()
        .map(|path| env_var(path))
        .filter(|var| !text.contains(&format!("Environment: {var}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{EXAMPLE} lacks an `Environment: …` line for: {missing:?}"
    );
}

#[test]
fn secrets_in_the_example_show_their_file_variable() {
    let text = read(EXAMPLE);
    for path in ["database.url", "server.metrics_token"] {
        let var = format!("{}_FILE", env_var(path));
        assert!(text.contains(&var), "{EXAMPLE} does not mention {var}");
    }
}

#[test]
fn the_example_sets_every_key_to_its_default() {
    let example: Config = toml::from_str(&read(EXAMPLE)).expect("the example parses");
    assert_eq!(
        example,
        Config::default(),
        "{EXAMPLE} and the defaults in src/config/mod.rs disagree"
    );
}

#[test]
fn the_configmap_configuration_loads() {
    let text = configmap_toml(&read(CONFIGMAP));
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("idbridge.toml");
    std::fs::write(&path, &text).expect("write the extracted configuration");
    let loaded = config::load(Some(path.as_path()));
    assert!(
        loaded.is_ok(),
        "the idbridge.toml in {CONFIGMAP} does not load: {}\n{text}",
        loaded.err().map(|e| e.to_string()).unwrap_or_default()
    );
}

#[test]
fn the_configmap_configuration_listens_on_every_interface_and_logs_json() {
    let text = configmap_toml(&read(CONFIGMAP));
    let parsed: Config = toml::from_str(&text).expect("the ConfigMap's idbridge.toml parses");
    assert!(
        parsed.server.listen.ip().is_unspecified(),
        "{}",
        parsed.server.listen
    );
    assert_eq!(parsed.server.listen.port(), 8080);
    assert_eq!(parsed.log.format, config::LogFormat::Json);
}
