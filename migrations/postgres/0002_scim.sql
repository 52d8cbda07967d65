-- SCIM 2.0 resources pushed by IdPs (PostgreSQL). Kept in step with migrations/sqlite/0002_scim.sql.
-- A SCIM User is mirrored as an identity of its source with the same id; these tables keep the
-- protocol's view: the canonical document, uniqueness keys, memberships and searchable values.

create table scim_users (
    id               uuid primary key not null,
    source_id        uuid not null references sources (id) on delete cascade,
    user_name        text not null,
    user_name_lower  text not null,
    external_id      text,
    active           boolean not null,
    document         jsonb not null,
    version          bigint not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    unique (source_id, user_name_lower),
    unique (source_id, external_id)
);
create index scim_users_created on scim_users (source_id, created_at, id);

create table scim_groups (
    id                  uuid primary key not null,
    source_id           uuid not null references sources (id) on delete cascade,
    display_name        text not null,
    display_name_lower  text not null,
    external_id         text,
    document            jsonb not null,
    version             bigint not null,
    created_at          timestamptz not null,
    updated_at          timestamptz not null,
    unique (source_id, display_name_lower),
    unique (source_id, external_id)
);
create index scim_groups_created on scim_groups (source_id, created_at, id);

-- Group members, kept apart from the document so that large groups change member by member.
create table scim_members (
    group_id       uuid not null references scim_groups (id) on delete cascade,
    member_id      text collate "C" not null,
    member_type    text not null check (member_type in ('User', 'Group')),
    display        text,
    display_lower  text collate "C",
    primary key (group_id, member_id)
);
create index scim_members_member on scim_members (member_id);

-- Every leaf value of every resource, for filters and sorting: `attr` is the lower-case
-- attribute key (`username`, `emails.value`, `urn:…:user:manager.value`), `elem` the position
-- within a multi-valued attribute (0 otherwise). Text compares in byte order (collate "C"),
-- as SQLite and the in-memory evaluator do.
create table scim_values (
    resource_id  uuid not null,
    source_id    uuid not null,
    attr         text not null,
    elem         integer not null,
    value_text   text collate "C",
    value_lower  text collate "C",
    value_time   timestamptz,
    value_bool   boolean
);
create index scim_values_lower on scim_values (source_id, attr, value_lower);
create index scim_values_text on scim_values (source_id, attr, value_text);
create index scim_values_resource on scim_values (resource_id, attr);
