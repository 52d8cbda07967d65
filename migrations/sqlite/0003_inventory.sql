-- Target inventories (SQLite). Kept in step with migrations/postgres/0003_inventory.sql.
-- An account's directory, direct groups and licence flag live in accounts.attributes;
-- groups get their own table so that licence groups and nesting can be inspected.

create table target_groups (
    id                blob primary key not null,
    target_id         blob not null references targets (id) on delete cascade,
    name              text not null,
    name_lower        text not null,
    remote_id         text,
    directory         text,
    read_only         text,
    grants_licence    boolean not null default 0,
    nested            text not null default '[]',
    member_count      integer not null default 0,
    last_snapshot_id  blob references snapshots (id) on delete set null,
    updated_at        text not null,
    unique (target_id, name_lower)
);

create index accounts_snapshot on accounts (target_id, last_snapshot_id);
