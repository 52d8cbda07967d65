//! `idbridge audit verify|export|checkpoint`: checking the audit log's chain (and its
//! checkpoint outside the database), exporting it as JSON lines or CSV, and writing the
//! signed checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::UsageError;
use crate::config::Config;
use crate::engine::audit::{
    self as engine_audit, ExportFormat, read_authentic_checkpoint, read_checkpoint,
};
use crate::store::{AuditKey, Store};

/// What to do with the audit log.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the whole chain and check every entry (HMAC entries with the audit key) and, with
    /// a checkpoint, that the newest entries are all there. Exits 0 when intact, 1 with the
    /// first broken seq otherwise.
    Verify {
        /// The checkpoint to check against (default: `audit.checkpoint_file`).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Write the log out, oldest first, and record the export in the log.
    Export {
        /// `jsonl` (one JSON object per line) or `csv`.
        #[arg(long, value_name = "FORMAT", default_value = "jsonl")]
        format: ExportFormat,
        /// Only entries that occurred at or after this instant (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        since: Option<String>,
        /// Write here (created mode 0600) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write the signed checkpoint of the newest entry to `audit.checkpoint_file`.
    Checkpoint,
}

/// Who is acting: `--as`, else `IDBRIDGE_PRINCIPAL`, else `USER`, else `cli`.
pub(super) fn principal(given: Option<&str>) -> String {
    let pick = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    pick(given.map(str::to_owned))
        .or_else(|| pick(std::env::var("IDBRIDGE_PRINCIPAL").ok()))
        .or_else(|| pick(std::env::var("USER").ok()))
        .map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect())
        .unwrap_or_else(|| "cli".to_owned())
}

/// Parses `--since`.
pub(super) fn parse_since(since: Option<&str>) -> Result<Option<DateTime<Utc>>, UsageError> {
    since
        .map(|s| {
            DateTime::parse_from_rfc3339(s.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    UsageError::Invalid(format!(
                        "--since: not an RFC 3339 instant (e.g. 2026-05-01T00:00:00Z): {e}"
                    ))
                })
        })
        .transpose()
}

/// Runs `audit verify`.
pub(super) async fn verify(
    store: &Store,
    config: &Config,
    key: Option<&AuditKey>,
    checkpoint: Option<&Path>,
) -> anyhow::Result<()> {
    let (path, explicit) = match checkpoint {
        Some(p) => (Some(p.to_owned()), true),
        None => (config.audit.checkpoint_file.clone(), false),
    };
    let checkpoint = match &path {
        None => None,
        Some(p) => match read_checkpoint(p)? {
            Some(cp) => Some(cp),
            None if explicit => bail!("checkpoint {} does not exist", p.display()),
            None => {
                eprintln!(
                    "note: no checkpoint at {} yet (`idbridge audit checkpoint` writes one)",
                    p.display()
                );
                None
            }
        },
    };
    let report = engine_audit::verify(store, key, checkpoint.as_ref()).await?;
    if report.intact() {
        println!("{}", report.summary());
        Ok(())
    } else {
        bail!("{}", report.summary())
    }
}

/// Runs `audit export`.
pub(super) async fn export(
    store: &Store,
    actor: &str,
    format: ExportFormat,
    since: Option<DateTime<Utc>>,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let (entries, destination) = match output {
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let file = options
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let n = engine_audit::export(store, format, since, file).await?;
            eprintln!("exported {n} audit entries to {}", path.display());
            (n, path.display().to_string())
        }
        None => {
            let stdout = std::io::stdout().lock();
            let n = engine_audit::export(store, format, since, stdout).await?;
            (n, "stdout".to_owned())
        }
    };
    engine_audit::record_export(store, actor, format, since, entries, &destination)
        .await
        .context("the export was written but could not be recorded in the audit log")?;
    Ok(())
}

/// Runs `audit checkpoint`.
pub(super) async fn checkpoint(
    store: &Store,
    config: &Config,
    key: Option<&AuditKey>,
) -> anyhow::Result<()> {
    let Some(path) = &config.audit.checkpoint_file else {
        return Err(UsageError::Invalid(
            "audit.checkpoint_file is not set: configure where the checkpoint is kept".into(),
        )
        .into());
    };
    let Some(key) = key else {
        return Err(UsageError::Invalid(
            "no audit key: set audit.key or audit.key_path to sign the checkpoint".into(),
        )
        .into());
    };
    // A tampered previous checkpoint is reported rather than silently replaced.
    read_authentic_checkpoint(path, key)?;
    let cp = engine_audit::write_checkpoint(store, key, path).await?;
    println!(
        "checkpoint written to {}: seq {}, {} entries",
        path.display(),
        cp.seq,
        cp.entries
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_instants_only() {
        let t = parse_since(Some("2026-05-01T02:00:00+02:00"))
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-05-01T00:00:00+00:00");
        assert!(parse_since(None).unwrap().is_none());
        assert!(parse_since(Some("yesterday")).is_err());
    }

    #[test]
    fn the_principal_given_wins_and_is_one_clean_line() {
        assert_eq!(principal(Some(" bob ")), "bob");
        assert_eq!(principal(Some("a\nb")), "ab");
        assert!(!principal(None).is_empty());
    }
}
