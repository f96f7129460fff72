-- Who entered and who left each audience at each run, in one monotonic
-- sequence per database: the feed email tools poll.

-- +goose Up
CREATE TABLE audience_changes (
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
CREATE INDEX audience_changes_audience ON audience_changes (audience, id);

-- +goose Down
DROP TABLE audience_changes;
