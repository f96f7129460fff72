-- Undo and erase: identifiers blocked after the fact (unlink), profiles
-- retired when their messages were re-resolved, and a record of deletions
-- that keeps no personal data.

-- +goose Up
CREATE TABLE identity_blocks (
    type   TEXT    NOT NULL,
    value  TEXT    NOT NULL,
    reason TEXT    NOT NULL DEFAULT '',
    at_ms  INTEGER NOT NULL,
    PRIMARY KEY (type, value)
);

ALTER TABLE profiles ADD COLUMN retired_ms INTEGER;

CREATE TABLE profile_deletions (
    id                  INTEGER PRIMARY KEY,
    profile_id          INTEGER NOT NULL,
    events_deleted      INTEGER NOT NULL,
    identifiers_deleted INTEGER NOT NULL,
    requested_by        TEXT    NOT NULL,
    at_ms               INTEGER NOT NULL
);

-- +goose Down
DROP TABLE profile_deletions;
ALTER TABLE profiles DROP COLUMN retired_ms;
DROP TABLE identity_blocks;
