-- Polled identity sources (PostgreSQL). Kept in step with migrations/sqlite/0004_sources.sql.

-- 'unknown': a raw IdP status idbridge has no mapping for; never a leaver.
alter table identities drop constraint identities_status_check;
alter table identities add constraint identities_status_check
    check (status in ('active', 'staged', 'suspended', 'deprovisioned', 'deleted', 'unknown'));
create index identities_snapshot on identities (source_id, last_snapshot_id);

-- Groups as a polled source reports them, with their direct members' external ids.
create table source_groups (
    id                uuid primary key not null,
    source_id         uuid not null references sources (id) on delete cascade,
    external_id       text not null,
    name              text not null,
    members           jsonb not null default '[]'::jsonb,
    member_count      bigint not null default 0,
    last_snapshot_id  uuid references snapshots (id) on delete set null,
    updated_at        timestamptz not null,
    unique (source_id, external_id)
);

-- Successful sign-ins to the Confluence application, once per event id.
create table sign_in_events (
    source_id    uuid not null references sources (id) on delete cascade,
    event_id     text not null,
    external_id  text,
    login        text,
    occurred_at  timestamptz not null,
    recorded_at  timestamptz not null,
    primary key (source_id, event_id)
);
create index sign_in_events_person on sign_in_events (source_id, external_id, occurred_at);

-- Where each incremental stream of a source picks up next ('changes', 'sign_ins').
create table source_checkpoints (
    source_id   uuid not null references sources (id) on delete cascade,
    stream      text not null check (stream in ('changes', 'sign_ins')),
    checkpoint  text not null,
    updated_at  timestamptz not null,
    primary key (source_id, stream)
);
