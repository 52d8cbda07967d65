//! Loading the layers into a [`Config`] and turning figment's errors into one clear message
//! per problem that names the key and the layer it came from.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, error::Kind};

use super::Config;

/// Prefix of every environment variable idbridge reads.
pub const ENV_PREFIX: &str = "IDBRIDGE_";

/// Environment variables with the prefix that are not configuration keys.
const NON_KEY_VARS: &[&str] = &["CONFIG", "PRINCIPAL", "FAILPOINTS"];

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` names a file that is not there.
    #[error("config file {} does not exist", path.display())]
    FileNotFound { path: PathBuf },
    /// A `*_FILE` variable names a file that cannot be read.
    #[error("cannot read secret file {} named by {var}: {source}", path.display())]
    SecretFile {
        var: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// One or more keys are unknown, mistyped or invalid.
    #[error("invalid configuration: {}", problems.join("; "))]
    Invalid { problems: Vec<String> },
}

/// Loads the configuration from defaults, the optional TOML `file`, and the process
/// environment, then validates it.
pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(file, &env)
}

fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::FileNotFound {
                path: path.to_owned(),
            });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(EnvVars::new(env));
    for secret in secret_files(env)? {
        figment = figment.merge(secret);
    }
    // Lossy: environment values arrive as text; `"8"` becomes a number where one is wanted.
    let config: Config = figment.extract_lossy().map_err(|e| ConfigError::Invalid {
        problems: e.into_iter().map(describe).collect(),
    })?;
    config
        .validate()
        .map_err(|problems| ConfigError::Invalid { problems })?;
    Ok(config)
}

/// `SECTION__KEY_FILE` names a secret file; `SECTION__FILE` would be a key called `file`.
fn is_file_var(key_without_prefix: &str) -> bool {
    key_without_prefix.ends_with("_FILE") && !key_without_prefix.ends_with("__FILE")
}

/// The `IDBRIDGE_<SECTION>__<KEY>` variables. Values are parsed like TOML values (so lists and
/// tables work), except that scalars stay text: a numeric-looking token must not turn into a
/// number, and lossy extraction turns text into a number or boolean where the key wants one.
struct EnvVars {
    vars: Vec<(String, Value)>,
}

impl EnvVars {
    fn new(env: &[(String, String)]) -> Self {
        let mut vars: Vec<(String, Value)> = env
            .iter()
            .filter_map(|(name, raw)| {
                let rest = name.strip_prefix(ENV_PREFIX)?;
                if rest.is_empty() || NON_KEY_VARS.contains(&rest) || is_file_var(rest) {
                    return None;
                }
                let key = rest.to_ascii_lowercase().replace("__", ".");
                let value = match raw.parse::<Value>() {
                    Ok(v @ (Value::Array(..) | Value::Dict(..))) => v,
                    _ => Value::from(raw.clone()),
                };
                Some((key, value))
            })
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        Self { vars }
    }
}

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, value) in &self.vars {
            if let Some(nested) = figment::util::nest(key, value.clone()).into_dict() {
                merge_into(&mut dict, nested);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Deep-merges `from` into `into`; on a clash the value from `from` wins.
fn merge_into(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Dict(_, existing)), Value::Dict(_, incoming)) => {
                merge_into(existing, incoming)
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// One `IDBRIDGE_…_FILE` variable, already read.
struct SecretFile {
    var: String,
    key: String,
    value: String,
}

fn secret_files(env: &[(String, String)]) -> Result<Vec<SecretFile>, ConfigError> {
    let mut out = Vec::new();
    for (var, path) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !is_file_var(rest) {
            continue;
        }
        let key = rest[..rest.len() - "_FILE".len()]
            .to_ascii_lowercase()
            .replace("__", ".");
        let path = PathBuf::from(path);
        let raw = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
            var: var.clone(),
            path: path.clone(),
            source,
        })?;
        let value = raw.trim_end_matches(['\r', '\n']).to_owned();
        out.push(SecretFile {
            var: var.clone(),
            key,
            value,
        });
    }
    out.sort_by(|a, b| a.var.cmp(&b.var));
    Ok(out)
}

impl Provider for SecretFile {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("secret file named by {}", self.var))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let nested = figment::util::nest(&self.key, Value::from(self.value.clone()));
        let dict = nested.into_dict().unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

/// One line for one figment error: what is wrong, with which key, in which layer.
fn describe(e: figment::Error) -> String {
    let mut key = e.path.join(".");
    let what = match &e.kind {
        Kind::UnknownField(field, expected) => {
            if e.path.last().is_none_or(|last| last != field) {
                key = if key.is_empty() {
                    field.clone()
                } else {
                    format!("{key}.{field}")
                };
            }
            if expected.is_empty() {
                "unknown key".to_owned()
            } else {
                format!("unknown key (expected one of: {})", expected.join(", "))
            }
        }
        // Parse errors quote the file with a caret diagram; keep only the sentences.
        other => other
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains('|') && !l.starts_with('^'))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let origin = match &e.metadata {
        Some(md) => match md.source.as_ref() {
            Some(figment::Source::File(path)) => format!("TOML file {}", path.display()),
            _ if md.name.contains("environment") => {
                format!(
                    "environment variable {ENV_PREFIX}{}",
                    key.to_ascii_uppercase().replace('.', "__")
                )
            }
            _ => md.name.to_string(),
        },
        None => "defaults".to_owned(),
    };
    if key.is_empty() {
        format!("{what} (in {origin})")
    } else {
        format!("`{key}`: {what} (in {origin})")
    }
}

#[cfg(test)]
#[expect(
    clippy::result_large_err,
    reason = "figment::Jail closures return figment::Error"
)]
mod tests {
    use super::*;
    use crate::config::{DatabaseBackend, LogFormat};
    use figment::Jail;

    fn err(result: Result<Config, ConfigError>) -> String {
        result
            .expect_err("expected a configuration error")
            .to_string()
    }

    #[test]
    fn defaults_alone_make_a_valid_sqlite_config() {
        Jail::expect_with(|_| {
            let c = load(None).expect("defaults load");
            assert_eq!(c.database.url.backend(), Some(DatabaseBackend::Sqlite));
            assert_eq!(c.server.listen.port(), 8080);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "idbridge.toml",
                r#"
                [server]
                listen = "0.0.0.0:9000"
                request_timeout_secs = 7
                [log]
                format = "json"
                "#,
            )?;
            jail.set_env("IDBRIDGE_SERVER__LISTEN", "127.0.0.1:9100");
            let c = load(Some(Path::new("idbridge.toml"))).expect("loads");
            assert_eq!(c.server.listen.to_string(), "127.0.0.1:9100", "env wins");
            assert_eq!(c.server.request_timeout_secs, 7, "file wins over default");
            assert_eq!(c.log.format, LogFormat::Json);
            assert_eq!(c.server.body_limit_bytes, 1024 * 1024, "default kept");
            Ok(())
        });
    }

    #[test]
    fn secret_file_variable_supplies_the_value_without_its_newline() {
        Jail::expect_with(|jail| {
            jail.create_file("db-url", "postgres://idb:filepass@db/idb\n")?;
            jail.set_env("IDBRIDGE_DATABASE__URL", "sqlite://ignored.db");
            jail.set_env("IDBRIDGE_DATABASE__URL_FILE", "db-url");
            let c = load(None).expect("loads");
            assert_eq!(c.database.url.expose(), "postgres://idb:filepass@db/idb");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_in_file_is_named_with_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")?;
            let msg = err(load(Some(Path::new("c.toml"))));
            assert!(msg.contains("`server.lisen`: unknown key"), "{msg}");
            assert!(msg.contains("TOML file") && msg.contains("c.toml"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_in_environment_is_named_with_its_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("IDBRIDGE_DATABSE__URL", "sqlite://x.db");
            let msg = err(load(None));
            assert!(msg.contains("`databse`: unknown key"), "{msg}");
            assert!(
                msg.contains("environment variable IDBRIDGE_DATABSE"),
                "{msg}"
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_secret_file_key_is_named_with_its_variable() {
        Jail::expect_with(|jail| {
            jail.create_file("tok", "abc")?;
            jail.set_env("IDBRIDGE_SERVER__TOKEN_FILE", "tok");
            let msg = err(load(None));
            assert!(msg.contains("`server.token`: unknown key"), "{msg}");
            assert!(msg.contains("IDBRIDGE_SERVER__TOKEN_FILE"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn unreadable_secret_file_names_the_variable_and_path() {
        Jail::expect_with(|jail| {
            jail.set_env("IDBRIDGE_DATABASE__URL_FILE", "/nonexistent/secret");
            let msg = err(load(None));
            assert!(
                msg.contains("IDBRIDGE_DATABASE__URL_FILE") && msg.contains("/nonexistent/secret"),
                "{msg}"
            );
            Ok(())
        });
    }

    #[test]
    fn wrong_type_names_key_and_layer() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[database]\nmax_connections = \"many\"\n")?;
            let msg = err(load(Some(Path::new("c.toml"))));
            assert!(msg.contains("`database.max_connections`"), "{msg}");
            assert!(msg.contains("c.toml"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn malformed_toml_is_an_error_naming_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[server\nlisten = 1")?;
            let msg = err(load(Some(Path::new("c.toml"))));
            assert!(msg.contains("c.toml"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn missing_config_file_is_an_error() {
        Jail::expect_with(|_| {
            let msg = err(load(Some(Path::new("nope.toml"))));
            assert_eq!(msg, "config file nope.toml does not exist");
            Ok(())
        });
    }

    #[test]
    fn unknown_database_scheme_is_rejected_without_showing_the_url() {
        Jail::expect_with(|jail| {
            jail.set_env("IDBRIDGE_DATABASE__URL", "mysql://root:topsecret@db/x");
            let msg = err(load(None));
            assert!(
                msg.contains("database.url: unsupported scheme `mysql`"),
                "{msg}"
            );
            assert!(!msg.contains("topsecret"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn invalid_log_filter_is_rejected() {
        Jail::expect_with(|jail| {
            jail.set_env("IDBRIDGE_LOG__FILTER", "info,=[");
            let msg = err(load(None));
            assert!(msg.contains("log.filter"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn numeric_looking_secret_from_environment_stays_a_string() {
        Jail::expect_with(|jail| {
            jail.set_env("IDBRIDGE_SERVER__METRICS_TOKEN", "12345678901234567890");
            let c = load(None).expect("loads");
            assert_eq!(
                c.server.metrics_token.as_ref().map(|t| t.expose()),
                Some("12345678901234567890")
            );
            Ok(())
        });
    }

    #[test]
    fn rendered_config_shows_no_secret() {
        Jail::expect_with(|jail| {
            jail.set_env("IDBRIDGE_DATABASE__URL", "postgres://u:pw-in-url@h/d");
            jail.set_env("IDBRIDGE_SERVER__METRICS_TOKEN", "metrics-token-value-1");
            let out = load(None).expect("loads").render_redacted();
            assert!(
                !out.contains("pw-in-url") && !out.contains("metrics-token-value-1"),
                "{out}"
            );
            assert!(out.contains("metrics_token = \"***\""), "{out}");
            Ok(())
        });
    }
}
