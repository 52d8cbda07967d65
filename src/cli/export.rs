//! `idbridge export accounts|people|runs`: the joined view as CSV, a JSON array or JSON lines,
//! to standard output or to a file (written beside it under a temporary name, mode 0600,
//! then renamed into place), with the export recorded in the audit log.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::UsageError;
use super::audit::principal;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::engine::export::{self, ExportError, ExportKind, Format};
use crate::store::Store;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportWhat {
    /// One row per Confluence account: licence, licence groups held, groups, directory,
    /// admin, managed (or why not), created, last login, first seen.
    Accounts,
    /// One row per account with its link state, linked identities (IdP status, last login),
    /// effective last activity and where it came from, inactive days, absent syncs and the
    /// actions stored runs still have pending for it.
    People,
    /// One row per stored run (status, rules, who started and approved it, actions per
    /// phase), newest first; with `--actions`, one row per action instead.
    Runs,
}

/// `idbridge export`'s options.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to export.
    #[arg(value_enum)]
    pub what: ExportWhat,
    /// `csv` (RFC 4180, header row, lists joined with `;`, cells starting with = + - @ get a
    /// leading `'`), `json` (one array, written row by row) or `jsonl` (one object per line:
    /// the one to stream large exports into other tools).
    #[arg(long, value_name = "FORMAT", default_value = "csv")]
    pub format: Format,
    /// Write here instead of standard output (a temporary file beside it, mode 0600, renamed
    /// into place when complete: exports hold personal data).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With `runs`: one row per action (run id, seq, username, kind, phase, attempts, error,
    /// pre- and post-image as JSON).
    #[arg(long)]
    pub actions: bool,
    /// With `people`: also what the rules would plan now for each person (runs the planner
    /// as `idbridge plan` does).
    #[arg(long)]
    pub with_plan: bool,
    /// Who is exporting, for the audit log (default: `IDBRIDGE_PRINCIPAL`, else `USER`, else
    /// `cli`).
    #[arg(long = "as", value_name = "NAME")]
    pub principal: Option<String>,
}

impl ExportArgs {
    /// The export asked for; options that do not fit it are refused.
    pub(super) fn kind(&self) -> Result<ExportKind, UsageError> {
        if self.actions && self.what != ExportWhat::Runs {
            return Err(UsageError::Invalid(
                "--actions goes with `idbridge export runs`".into(),
            ));
        }
        if self.with_plan && self.what != ExportWhat::People {
            return Err(UsageError::Invalid(
                "--with-plan goes with `idbridge export people`".into(),
            ));
        }
        Ok(match self.what {
            ExportWhat::Accounts => ExportKind::Accounts,
            ExportWhat::People => ExportKind::People,
            ExportWhat::Runs if self.actions => ExportKind::Actions,
            ExportWhat::Runs => ExportKind::Runs,
        })
    }
}

/// Runs `idbridge export`.
pub(super) async fn run(
    store: &Store,
    clock: &SharedClock,
    config: &Config,
    args: &ExportArgs,
) -> anyhow::Result<()> {
    let kind = args.kind()?;
    let actor = principal(args.principal.as_deref());
    let (rows, destination) = match &args.output {
        Some(path) => {
            let (temp, file) = create_temp(path)?;
            let written = write(store, clock, config, args, kind, &file).await;
            let rows = match written {
                Ok(rows) => rows,
                Err(e) => {
                    drop(file);
                    let _ = std::fs::remove_file(&temp);
                    return Err(e.into());
                }
            };
            persist(&temp, file, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "exported {rows} {} rows to {}",
                kind.as_str(),
                path.display()
            );
            (rows, path.display().to_string())
        }
        None => {
            let stdout = std::io::stdout().lock();
            let rows = write(store, clock, config, args, kind, stdout).await?;
            (rows, "stdout".to_owned())
        }
    };
    export::record_export(store, &actor, kind, args.format, rows, &destination)
        .await
        .context("the export was written but could not be recorded in the audit log")?;
    Ok(())
}

async fn write<W: std::io::Write>(
    store: &Store,
    clock: &SharedClock,
    config: &Config,
    args: &ExportArgs,
    kind: ExportKind,
    out: W,
) -> Result<u64, ExportError> {
    let format = args.format;
    match kind {
        ExportKind::Accounts => export::export_accounts(store, config, format, out).await,
        ExportKind::People => {
            export::export_people(store, config, format, args.with_plan, clock.now(), out).await
        }
        ExportKind::Runs => export::export_runs(store, format, false, out).await,
        ExportKind::Actions => export::export_runs(store, format, true, out).await,
    }
}

/// A new file beside `path`, readable only by its owner, to write the export into.
fn create_temp(path: &Path) -> anyhow::Result<(PathBuf, File)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| UsageError::Invalid(format!("--output {}: not a file", path.display())))?;
    let mut raw = [0u8; 6];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness for a file name: {e}"))?;
    let suffix: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let temp = dir.join(format!(".{name}.{suffix}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    Ok((temp, file))
}

/// Syncs the written file and renames it over `path`; removes it when that fails.
fn persist(temp: &Path, file: File, path: &Path) -> std::io::Result<()> {
    let result = file.sync_all().and_then(|()| {
        drop(file);
        std::fs::rename(temp, path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(what: ExportWhat, actions: bool, with_plan: bool) -> ExportArgs {
        ExportArgs {
            what,
            format: Format::Csv,
            output: None,
            actions,
            with_plan,
            principal: None,
        }
    }

    #[test]
    fn options_that_do_not_fit_the_export_are_refused() {
        assert_eq!(
            args(ExportWhat::Runs, true, false).kind().unwrap(),
            ExportKind::Actions
        );
        assert_eq!(
            args(ExportWhat::People, false, true).kind().unwrap(),
            ExportKind::People
        );
        assert!(args(ExportWhat::People, true, false).kind().is_err());
        assert!(args(ExportWhat::Accounts, false, true).kind().is_err());
    }

    #[test]
    fn a_written_export_replaces_the_file_and_is_readable_only_by_its_owner() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.csv");
        std::fs::write(&path, "old").unwrap();
        let (temp, mut file) = create_temp(&path).unwrap();
        file.write_all(b"new").unwrap();
        persist(&temp, file, &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert!(!temp.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
