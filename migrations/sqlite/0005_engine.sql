-- Reconciliation engine (SQLite). Kept in step with migrations/postgres/0005_engine.sql.
--
-- `runs` and `actions` from 0001 were placeholders that nothing ever wrote; they are
-- replaced by the shapes the planner and the crash-safe executor need.

drop table actions;
drop table runs;

-- One planning pass (rules, bulk, undo) and its plan. A held plan waits for an approval
-- bound to `plan_hash`.
create table runs (
    id                   blob primary key not null,
    kind                 text not null check (kind in ('rule', 'bulk', 'undo', 'regrant')),
    mode                 text not null check (mode in ('dry_run', 'enforce')),
    status               text not null check (status in ('planned', 'held', 'approved', 'running', 'succeeded', 'failed', 'cancelled', 'expired', 'recorded')),
    rules                text not null default '[]',
    started_by           text not null,
    config_hash          text not null,
    plan_hash            text not null,
    action_count         integer not null default 0,
    budget               text not null default '{}',
    approved_by          text,
    approved_at          text,
    approval_expires_at  text,
    epoch                integer,
    created_at           text not null,
    started_at           text,
    finished_at          text,
    summary              text not null default '{}'
);
create index runs_created on runs (created_at);
create index runs_status on runs (status);

-- One planned write. Phases: planned → claimed → sent → confirmed | failed | skipped |
-- poisoned. `pre_image` is stored before the write is sent; `params` fixes the action's
-- arguments at plan time (e.g. the rename target).
create table actions (
    id                blob primary key not null,
    run_id            blob not null references runs (id) on delete cascade,
    seq               integer not null,
    target_id         blob not null references targets (id) on delete cascade,
    account_id        blob not null references accounts (id) on delete cascade,
    identity_id       blob references identities (id) on delete set null,
    account_key       text not null,
    username          text not null,
    kind              text not null,
    params            text not null,
    budget_kind       text not null,
    rule              text not null,
    reason            text not null,
    phase             text not null check (phase in ('planned', 'claimed', 'sent', 'confirmed', 'failed', 'skipped', 'poisoned')),
    attempts          integer not null default 0,
    not_before        text,
    claimed_by        text,
    claim_expires_at  text,
    pre_image         text,
    post_image        text,
    error             text,
    updated_at        text not null,
    finished_at       text,
    unique (run_id, seq)
);
create index actions_phase on actions (phase, not_before);
create index actions_account on actions (account_id, phase);
create index actions_run on actions (run_id, phase);
create index actions_finished on actions (budget_kind, finished_at);

-- Entries written before an audit key was configured are plain SHA-256 (`sha256`);
-- later ones are HMAC-SHA-256 under a key kept outside the database (`hmac-sha256`).
alter table audit_log add column scheme text not null default 'sha256';
