-- Scheduled jobs (PostgreSQL). Kept in step with migrations/sqlite/0008_schedule.sql.
--
-- One row per job (`source:<name>`, `target:<name>`, `rule:<name>`): the last tick a
-- scheduler claimed for it, under which lease epoch. A tick is claimed (fenced by the epoch)
-- before the job runs, so each tick runs at most once however many instances there are.
create table schedule_ticks (
    job         text primary key not null,
    last_fired  timestamptz not null,
    epoch       bigint not null,
    claimed_at  timestamptz not null
);
