-- The feed of audience changes hands out each row's id as a cursor. SQLite
-- gives a new row the highest id plus one, so an erasure that deleted the
-- newest changes let the next run reuse their ids, and a poller already
-- past them skipped the new changes. AUTOINCREMENT never reuses an id, and
-- its counter (sqlite_sequence) tells the feed the highest id handed out.
-- The table is copied whole: SQLite cannot add AUTOINCREMENT in place.

-- +goose Up
CREATE TABLE audience_changes_next (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    audience    TEXT    NOT NULL,
    run_id      INTEGER NOT NULL REFERENCES audience_runs (id),
    change      TEXT    NOT NULL,
    profile_id  INTEGER NOT NULL,
    user_id     TEXT    NOT NULL DEFAULT '',
    email       TEXT    NOT NULL DEFAULT '',
    identifiers TEXT    NOT NULL,
    attributes  TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL
);
INSERT INTO audience_changes_next (id, audience, run_id, change, profile_id, user_id,
    email, identifiers, attributes, at_ms)
SELECT id, audience, run_id, change, profile_id, user_id, email, identifiers,
    attributes, at_ms FROM audience_changes;
DROP TABLE audience_changes;
ALTER TABLE audience_changes_next RENAME TO audience_changes;
CREATE INDEX audience_changes_audience ON audience_changes (audience, id);

-- +goose Down
CREATE TABLE audience_changes_previous (
    id          INTEGER PRIMARY KEY,
    audience    TEXT    NOT NULL,
    run_id      INTEGER NOT NULL REFERENCES audience_runs (id),
    change      TEXT    NOT NULL,
    profile_id  INTEGER NOT NULL,
    user_id     TEXT    NOT NULL DEFAULT '',
    email       TEXT    NOT NULL DEFAULT '',
    identifiers TEXT    NOT NULL,
    attributes  TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL
);
INSERT INTO audience_changes_previous (id, audience, run_id, change, profile_id, user_id,
    email, identifiers, attributes, at_ms)
SELECT id, audience, run_id, change, profile_id, user_id, email, identifiers,
    attributes, at_ms FROM audience_changes;
DROP TABLE audience_changes;
ALTER TABLE audience_changes_previous RENAME TO audience_changes;
CREATE INDEX audience_changes_audience ON audience_changes (audience, id);
