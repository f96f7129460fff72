-- knit's first schema. Times are integer milliseconds since the Unix epoch
-- (UTC) on every engine: one canonical form that sorts and compares the same
-- everywhere.

-- +goose Up
CREATE TABLE profiles (
    id          INTEGER PRIMARY KEY,
    merged_into INTEGER REFERENCES profiles (id),
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);

-- identities: every identifier value belongs to exactly one live profile.
CREATE TABLE identities (
    type             TEXT    NOT NULL,
    value            TEXT    NOT NULL,
    profile_id       INTEGER NOT NULL REFERENCES profiles (id),
    first_seen_ms    INTEGER NOT NULL,
    first_message_id TEXT    NOT NULL,
    source           TEXT    NOT NULL,
    app              TEXT    NOT NULL DEFAULT '',
    device           TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (type, value)
);
CREATE INDEX identities_profile ON identities (profile_id);
CREATE INDEX identities_value ON identities (value);

-- events: every accepted message, once. message_id is the dedupe key,
-- global as Segment's is.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    message_id    TEXT    NOT NULL UNIQUE,
    source        TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    event         TEXT    NOT NULL DEFAULT '',
    user_id       TEXT    NOT NULL DEFAULT '',
    anonymous_id  TEXT    NOT NULL DEFAULT '',
    profile_id    INTEGER REFERENCES profiles (id),
    ts_ms         INTEGER NOT NULL,
    received_ms   INTEGER NOT NULL,
    app           TEXT    NOT NULL DEFAULT '',
    device_type   TEXT    NOT NULL DEFAULT '',
    device_id     TEXT    NOT NULL DEFAULT '',
    properties    TEXT    NOT NULL DEFAULT '{}',
    raw           TEXT    NOT NULL
);
CREATE INDEX events_profile_ts ON events (profile_id, ts_ms);
CREATE INDEX events_event_ts ON events (event, ts_ms);

-- traits: per key, the value from the latest event timestamp wins.
CREATE TABLE traits (
    profile_id INTEGER NOT NULL REFERENCES profiles (id),
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    ts_ms      INTEGER NOT NULL,
    message_id TEXT    NOT NULL,
    PRIMARY KEY (profile_id, key)
);

-- profile_merges: which message made which profile fold into which.
CREATE TABLE profile_merges (
    id         INTEGER PRIMARY KEY,
    survivor   INTEGER NOT NULL REFERENCES profiles (id),
    merged     INTEGER NOT NULL REFERENCES profiles (id),
    message_id TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE INDEX profile_merges_survivor ON profile_merges (survivor);

CREATE TABLE audience_runs (
    id          INTEGER PRIMARY KEY,
    audience    TEXT    NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    evaluated_ms INTEGER NOT NULL,
    size        INTEGER NOT NULL DEFAULT 0,
    entered     INTEGER NOT NULL DEFAULT 0,
    exited      INTEGER NOT NULL DEFAULT 0,
    status      TEXT    NOT NULL,
    error       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audience_runs_audience ON audience_runs (audience, id);

-- audience_members: the last complete result of each audience, replaced
-- whole in the transaction that finishes a run.
CREATE TABLE audience_members (
    audience    TEXT    NOT NULL,
    profile_id  INTEGER NOT NULL,
    run_id      INTEGER NOT NULL REFERENCES audience_runs (id),
    user_id     TEXT    NOT NULL DEFAULT '',
    email       TEXT    NOT NULL DEFAULT '',
    identifiers TEXT    NOT NULL,
    attributes  TEXT    NOT NULL,
    PRIMARY KEY (audience, profile_id)
);

-- settings: small server-wide values such as the API token's hash.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE web_sessions (
    id_hash    TEXT    PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);

-- +goose Down
DROP TABLE web_sessions;
DROP TABLE settings;
DROP TABLE audience_members;
DROP TABLE audience_runs;
DROP TABLE profile_merges;
DROP TABLE traits;
DROP TABLE events;
DROP TABLE identities;
DROP TABLE profiles;
