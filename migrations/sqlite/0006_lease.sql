-- Scheduler lease (SQLite). Kept in step with migrations/postgres/0006_lease.sql.
--
-- One row per lease name. `epoch` grows by one each time the lease changes hands (or is
-- taken again after it expired or was released) and never goes back, so a write fenced
-- with an older epoch can be told apart. A released lease keeps its row with
-- `expires_at` set to the release time.
create table scheduler_lease (
    name         text primary key not null,
    holder       text not null,
    pid          integer not null,
    epoch        integer not null check (epoch > 0),
    acquired_at  text not null,
    expires_at   text not null
);
