-- The identity graph's history: which message tied which identifiers
-- (append-only, so profiles can be rebuilt), every decision the resolver
-- took with the rule behind it, and when each identifier was last seen
-- (for limits with a time window).

-- +goose Up
CREATE TABLE identity_links (
    message_id TEXT NOT NULL,
    type       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (message_id, type, value)
);
CREATE INDEX identity_links_identifier ON identity_links (type, value);

CREATE TABLE identity_decisions (
    id               INTEGER PRIMARY KEY,
    profile_id       INTEGER,
    kind             TEXT    NOT NULL,
    message_id       TEXT    NOT NULL,
    identifier       TEXT    NOT NULL DEFAULT '',
    other_profile_id INTEGER,
    rule             TEXT    NOT NULL DEFAULT '',
    detail           TEXT    NOT NULL DEFAULT '',
    event_ms         INTEGER NOT NULL,
    at_ms            INTEGER NOT NULL
);
CREATE INDEX identity_decisions_profile ON identity_decisions (profile_id, id);

ALTER TABLE identities ADD COLUMN last_seen_ms INTEGER NOT NULL DEFAULT 0;
UPDATE identities SET last_seen_ms = first_seen_ms;

-- +goose Down
ALTER TABLE identities DROP COLUMN last_seen_ms;
DROP TABLE identity_decisions;
DROP TABLE identity_links;
