-- Target inventories (PostgreSQL). Kept in step with migrations/sqlite/0003_inventory.sql.
-- An account's directory, direct groups and licence flag live in accounts.attributes;
-- groups get their own table so that licence groups and nesting can be inspected.

create table target_groups (
    id                uuid primary key not null,
    target_id         uuid not null references targets (id) on delete cascade,
    name              text not null,
    name_lower        text not null,
    remote_id         text,
    directory         text,
    read_only         text,
    grants_licence    boolean not null default false,
    nested            jsonb not null default '[]'::jsonb,
    member_count      bigint not null default 0,
    last_snapshot_id  uuid references snapshots (id) on delete set null,
    updated_at        timestamptz not null,
    unique (target_id, name_lower)
);

create index accounts_snapshot on accounts (target_id, last_snapshot_id);
