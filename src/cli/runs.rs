//! `idbridge runs list` and `idbridge runs show`: the stored runs and their actions, as a
//! table an identity admin can read (or JSON), and the one place the CLI turns a typed run
//! id (whole, or a unique prefix) into a [`RunId`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{UsageError, printable, when};
use crate::domain::RunId;
use crate::store::{ActionRecord, RunRecord, Store};

/// The shortest run-id prefix accepted.
const MIN_PREFIX: usize = 8;
/// How many of the newest runs a prefix is looked up among.
const PREFIX_WINDOW: i64 = 10_000;

/// The run `text` names: a whole id, or a prefix of at least eight characters that exactly
/// one of the newest runs starts with.
pub(super) async fn resolve(store: &Store, text: &str) -> anyhow::Result<RunId> {
    let text = text.trim();
    if let Ok(id) = uuid::Uuid::parse_str(text) {
        let id = RunId(id);
        store
            .run(id)
            .await?
            .ok_or_else(|| UsageError::Invalid(format!("no run {id}")))?;
        return Ok(id);
    }
    let prefix = text.to_ascii_lowercase();
    if prefix.len() < MIN_PREFIX || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(UsageError::Invalid(format!(
            "`{}` is not a run id (give the whole id or at least its first {MIN_PREFIX} characters)",
            text.escape_debug()
        ))
        .into());
    }
    let found: Vec<RunId> = store
        .runs(PREFIX_WINDOW)
        .await?
        .into_iter()
        .map(|r| r.id)
        .filter(|id| id.to_string().starts_with(&prefix))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(UsageError::Invalid(format!("no run starts with `{prefix}`")).into()),
        many => Err(UsageError::Invalid(format!(
            "`{prefix}` names {} runs; give more of the id",
            many.len()
        ))
        .into()),
    }
}

/// `idbridge runs list`: the newest runs first.
pub(super) async fn list(store: &Store, limit: u32, json: bool) -> anyhow::Result<()> {
    let runs = store.runs(i64::from(limit.clamp(1, 10_000))).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        print!("{}", render_list(&runs));
    }
    Ok(())
}

/// One run with its actions, for `--json`.
#[derive(Serialize)]
struct Shown<'a> {
    run: &'a RunRecord,
    phases: BTreeMap<&'static str, u32>,
    actions: &'a [ActionRecord],
}

/// `idbridge runs show`: one run, its budget check and every action with its phase.
pub(super) async fn show(store: &Store, text: &str, json: bool) -> anyhow::Result<()> {
    let id = resolve(store, text).await?;
    let run = store
        .run(id)
        .await?
        .ok_or_else(|| UsageError::Invalid(format!("no run {id}")))?;
    let actions = store.run_actions(id).await?;
    if json {
        let shown = Shown {
            run: &run,
            phases: phases(&actions),
            actions: &actions,
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        print!("{}", render_run(&run, &actions));
    }
    Ok(())
}

/// How many actions are in each phase.
fn phases(actions: &[ActionRecord]) -> BTreeMap<&'static str, u32> {
    let mut out = BTreeMap::new();
    for a in actions {
        *out.entry(a.phase.as_str()).or_default() += 1;
    }
    out
}

/// Stored text for the terminal: one line, no control characters.
fn clean(s: &str) -> String {
    s.chars().map(printable).collect()
}

fn render_list(runs: &[RunRecord]) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        let _ = writeln!(out, "no runs yet");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<36}  {:<17}  {:<7}  {:<8}  {:<9}  {:>7}  {:<16}  rules",
        "run", "created (UTC)", "kind", "mode", "status", "actions", "started by"
    );
    for r in runs {
        let _ = writeln!(
            out,
            "{:<36}  {:<17}  {:<7}  {:<8}  {:<9}  {:>7}  {:<16}  {}",
            r.id,
            when(r.created_at),
            r.kind.as_str(),
            r.mode.as_str(),
            r.status.as_str(),
            r.action_count,
            clean(&r.started_by),
            clean(&r.rules.join(", ")),
        );
    }
    out
}

fn render_run(r: &RunRecord, actions: &[ActionRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run        {}", r.id);
    let _ = writeln!(out, "kind       {} ({})", r.kind.as_str(), r.mode.as_str());
    let _ = writeln!(out, "status     {}", r.status.as_str());
    let _ = writeln!(out, "rules      {}", clean(&r.rules.join(", ")));
    let _ = writeln!(
        out,
        "started    {} by {}",
        when(r.created_at),
        clean(&r.started_by)
    );
    if let Some(by) = &r.approved_by {
        let at = r.approved_at.map(when).unwrap_or_default();
        let _ = writeln!(out, "approved   {at} by {}", clean(by));
    } else if let Some(until) = r.approval_expires_at {
        let _ = writeln!(out, "approval   needed before {}", when(until));
    }
    if let Some(at) = r.finished_at {
        let _ = writeln!(out, "finished   {}", when(at));
    }
    let _ = writeln!(out, "plan hash  {}", r.plan_hash);
    if let Some(reasons) = r.budget.get("reasons").and_then(|v| v.as_array())
        && !reasons.is_empty()
    {
        let _ = writeln!(out, "budget:");
        for reason in reasons.iter().filter_map(|v| v.as_str()) {
            let _ = writeln!(out, "  {}", clean(reason));
        }
    }
    let counts: Vec<String> = phases(actions)
        .into_iter()
        .map(|(p, n)| format!("{n} {p}"))
        .collect();
    let _ = writeln!(
        out,
        "actions    {} ({})",
        actions.len(),
        if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        }
    );
    for a in actions {
        let mut line = format!(
            "  {:>4}  {:<24}  {:<36}  {:<9}  rule {}",
            a.seq,
            clean(&a.username),
            super::engine::describe(&a.kind),
            a.phase.as_str(),
            clean(&a.rule),
        );
        if a.attempts > 1 {
            let _ = write!(line, ", {} attempts", a.attempts);
        }
        if let Some(e) = &a.error {
            let _ = write!(line, " — {}", clean(e));
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_with_control_characters_prints_on_one_line() {
        assert_eq!(clean("ann\n\u{1b}[31mevil"), "ann??[31mevil");
    }
}
