-- Messages the ingestion edge refused, so a data engineer can see why an
-- event is missing: whole requests (bad JSON, bad signature, too large,
-- wrong content type) and single elements of a batch. Kept small: rows
-- older than 7 days and all but the newest 10,000 are deleted as new ones
-- arrive. Secrets (the webhook secret, write keys, Authorization headers)
-- are never stored.

-- +goose Up
CREATE TABLE rejected_messages (
    id          INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    endpoint    TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    message_id  TEXT    NOT NULL DEFAULT '',
    excerpt     TEXT    NOT NULL DEFAULT '' -- at most the first 1,000 bytes
);

-- For the console's events-a-minute chart over the last day: the index
-- covers the columns the chart groups by, so counting reads no table rows.
CREATE INDEX events_received ON events (received_ms, type, source);

-- +goose Down
DROP INDEX events_received;
DROP TABLE rejected_messages;
