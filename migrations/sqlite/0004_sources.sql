-- no-transaction
-- Polled identity sources (SQLite). Kept in step with migrations/postgres/0004_sources.sql.
--
-- identities.status gains 'unknown' (a raw IdP status idbridge has no mapping for; never a
-- leaver). SQLite cannot change a CHECK constraint in place, so the table is rebuilt the way
-- SQLite documents: foreign keys off (so dropping the old table cascades nowhere), copy, drop,
-- rename, re-index, check the foreign keys, foreign keys back on. This file runs outside
-- sqlx's transaction because `pragma foreign_keys` is a no-op inside one; it opens its own.
pragma foreign_keys = off;
begin;

create table identities_v4 (
    id                 blob primary key not null,
    source_id          blob not null references sources (id) on delete cascade,
    external_id        text not null,
    user_name          text not null,
    user_name_lower    text not null,
    email              text,
    email_lower        text,
    display_name       text,
    status             text not null check (status in ('active', 'staged', 'suspended', 'deprovisioned', 'deleted', 'unknown')),
    status_changed_at  text not null,
    idp_created_at     text,
    last_login_at      text,
    attributes         text not null default '{}',
    first_seen_at      text not null,
    last_seen_at       text not null,
    last_snapshot_id   blob references snapshots (id) on delete set null,
    version            integer not null default 1,
    updated_at         text not null,
    unique (source_id, external_id)
);
insert into identities_v4 select id, source_id, external_id, user_name, user_name_lower, email,
    email_lower, display_name, status, status_changed_at, idp_created_at, last_login_at,
    attributes, first_seen_at, last_seen_at, last_snapshot_id, version, updated_at
  from identities;
drop table identities;
alter table identities_v4 rename to identities;
create index identities_user_name on identities (source_id, user_name_lower);
create index identities_email on identities (email_lower);
create index identities_snapshot on identities (source_id, last_snapshot_id);

-- Groups as a polled source reports them, with their direct members' external ids.
create table source_groups (
    id                blob primary key not null,
    source_id         blob not null references sources (id) on delete cascade,
    external_id       text not null,
    name              text not null,
    members           text not null default '[]',
    member_count      integer not null default 0,
    last_snapshot_id  blob references snapshots (id) on delete set null,
    updated_at        text not null,
    unique (source_id, external_id)
);

-- Successful sign-ins to the Confluence application, once per event id.
create table sign_in_events (
    source_id    blob not null references sources (id) on delete cascade,
    event_id     text not null,
    external_id  text,
    login        text,
    occurred_at  text not null,
    recorded_at  text not null,
    primary key (source_id, event_id)
);
create index sign_in_events_person on sign_in_events (source_id, external_id, occurred_at);

-- Where each incremental stream of a source picks up next ('changes', 'sign_ins').
create table source_checkpoints (
    source_id   blob not null references sources (id) on delete cascade,
    stream      text not null check (stream in ('changes', 'sign_ins')),
    checkpoint  text not null,
    updated_at  text not null,
    primary key (source_id, stream)
);

commit;
pragma foreign_keys = on;
