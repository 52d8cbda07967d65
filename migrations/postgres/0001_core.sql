-- idbridge core schema (PostgreSQL). Kept in step with migrations/sqlite/0001_core.sql.
-- ids: uuid; timestamps: timestamptz (UTC); json: jsonb; booleans: boolean.

create table sources (
    id          uuid primary key not null,
    name        text not null unique,
    kind        text not null check (kind in ('scim', 'okta', 'entra', 'google', 'ldap', 'csv')),
    created_at  timestamptz not null,
    updated_at  timestamptz not null
);

create table targets (
    id          uuid primary key not null,
    name        text not null unique,
    kind        text not null check (kind in ('confluence_dc', 'confluence_cloud')),
    base_url    text not null,
    created_at  timestamptz not null,
    updated_at  timestamptz not null
);

-- One pass over a source or a target. Removals are only ever planned from complete ones.
create table snapshots (
    id           uuid primary key not null,
    source_id    uuid references sources (id) on delete cascade,
    target_id    uuid references targets (id) on delete cascade,
    started_at   timestamptz not null,
    finished_at  timestamptz,
    status       text not null check (status in ('running', 'complete', 'incomplete', 'failed')),
    item_count   bigint not null default 0,
    detail       jsonb not null default '{}'::jsonb,
    check ((source_id is null) <> (target_id is null))
);
create index snapshots_source on snapshots (source_id, started_at);
create index snapshots_target on snapshots (target_id, started_at);

-- A person as one source knows them, keyed by the source's immutable id.
create table identities (
    id                 uuid primary key not null,
    source_id          uuid not null references sources (id) on delete cascade,
    external_id        text not null,
    user_name          text not null,
    user_name_lower    text not null,
    email              text,
    email_lower        text,
    display_name       text,
    status             text not null check (status in ('active', 'staged', 'suspended', 'deprovisioned', 'deleted')),
    status_changed_at  timestamptz not null,
    idp_created_at     timestamptz,
    last_login_at      timestamptz,
    attributes         jsonb not null default '{}'::jsonb,
    first_seen_at      timestamptz not null,
    last_seen_at       timestamptz not null,
    last_snapshot_id   uuid references snapshots (id) on delete set null,
    version            bigint not null default 1,
    updated_at         timestamptz not null,
    unique (source_id, external_id)
);
create index identities_user_name on identities (source_id, user_name_lower);
create index identities_email on identities (email_lower);

-- A user account in one target, keyed by the target's immutable key.
create table accounts (
    id                 uuid primary key not null,
    target_id          uuid not null references targets (id) on delete cascade,
    account_key        text not null,
    user_name          text not null,
    user_name_lower    text not null,
    email              text,
    email_lower        text,
    display_name       text,
    active             boolean not null,
    last_login_at      timestamptz,
    remote_created_at  timestamptz,
    managed            boolean not null default true,
    attributes         jsonb not null default '{}'::jsonb,
    first_seen_at      timestamptz not null,
    last_seen_at       timestamptz not null,
    last_snapshot_id   uuid references snapshots (id) on delete set null,
    version            bigint not null default 1,
    updated_at         timestamptz not null,
    unique (target_id, account_key)
);
create index accounts_user_name on accounts (target_id, user_name_lower);
create index accounts_email on accounts (email_lower);

create table links (
    id           uuid primary key not null,
    identity_id  uuid not null references identities (id) on delete cascade,
    account_id   uuid not null references accounts (id) on delete cascade,
    method       text not null check (method in ('immutable_id', 'email', 'username', 'manual')),
    created_at   timestamptz not null,
    unique (identity_id, account_id)
);
create index links_account on links (account_id);

-- Schemes: selector, exemptions and action ladder live in `definition`.
create table rules (
    id          uuid primary key not null,
    name        text not null unique,
    enabled     boolean not null,
    mode        text not null check (mode in ('dry_run', 'enforce')),
    schedule    text,
    origin      text not null check (origin in ('config', 'store')),
    definition  jsonb not null,
    created_at  timestamptz not null,
    updated_at  timestamptz not null
);

create table runs (
    id           uuid primary key not null,
    rule_id      uuid references rules (id) on delete set null,
    kind         text not null check (kind in ('rule', 'bulk', 'sync', 'undo')),
    mode         text not null check (mode in ('dry_run', 'enforce')),
    status       text not null check (status in ('planning', 'planned', 'held', 'approved', 'running', 'succeeded', 'failed', 'cancelled')),
    plan_hash    text,
    approved_by  text,
    approved_at  timestamptz,
    created_at   timestamptz not null,
    started_at   timestamptz,
    finished_at  timestamptz,
    summary      jsonb not null default '{}'::jsonb
);
create index runs_created on runs (created_at);

-- One planned write. `idempotency_key` makes re-planning and resuming safe; `pre_image`
-- holds what is needed to undo it.
create table actions (
    id                uuid primary key not null,
    run_id            uuid not null references runs (id) on delete cascade,
    seq               bigint not null,
    kind              text not null,
    target_id         uuid references targets (id) on delete set null,
    account_id        uuid references accounts (id) on delete set null,
    identity_id       uuid references identities (id) on delete set null,
    reason            text not null,
    idempotency_key   text not null unique,
    phase             text not null check (phase in ('pending', 'claimed', 'applied', 'skipped', 'failed')),
    attempts          integer not null default 0,
    claimed_by        text,
    claim_expires_at  timestamptz,
    pre_image         jsonb,
    post_image        jsonb,
    error             text,
    updated_at        timestamptz not null,
    unique (run_id, seq)
);
create index actions_phase on actions (phase, claim_expires_at);

-- Append-only; each row's hash covers the previous row's hash.
create table audit_log (
    seq           bigint generated always as identity primary key,
    id            uuid not null unique,
    occurred_at   timestamptz not null,
    actor         text not null,
    action        text not null,
    subject_kind  text,
    subject_id    text,
    detail        jsonb not null default '{}'::jsonb,
    prev_hash     text not null,
    hash          text not null unique
);

-- SCIM bearer tokens: a public prefix to find the row, and only a hash of the secret.
create table scim_tokens (
    id            uuid primary key not null,
    source_id     uuid not null references sources (id) on delete cascade,
    prefix        text not null unique,
    secret_hash   text not null,
    label         text,
    created_at    timestamptz not null,
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

create table settings (
    key         text primary key not null,
    value       jsonb not null,
    updated_at  timestamptz not null
);
