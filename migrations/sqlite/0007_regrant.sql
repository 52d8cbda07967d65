-- Licence back on login (SQLite). Kept in step with migrations/postgres/0007_regrant.sql.
--
-- One row per alert raised about an account: a leaver seen signing in
-- (`leaver_sign_in`) or a regrant with no free seat (`no_free_seat`). The same signal (its
-- time) raises an alert once, however many passes see it; the audit entry is written in
-- the same transaction as the row.
create table alerts (
    id          blob primary key not null,
    account_id  blob not null references accounts (id) on delete cascade,
    kind        text not null check (kind in ('leaver_sign_in', 'no_free_seat')),
    signal_at   text not null,
    raised_at   text not null,
    detail      text not null default '{}',
    unique (account_id, kind, signal_at)
);
create index alerts_raised on alerts (raised_at);

-- Removal episodes are read per account from confirmed actions of enforced runs.
create index actions_account_run on actions (account_id, run_id, seq);
