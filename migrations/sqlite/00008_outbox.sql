-- Audience changes waiting to be delivered to other tools, durable across
-- restarts; a message keeps its messageId through every retry.

-- +goose Up
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    audience        TEXT    NOT NULL,
    destination     TEXT    NOT NULL, -- the destination's key: url and style
    message_id      TEXT    NOT NULL UNIQUE,
    body            TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    delivered_ms    INTEGER,
    failed_ms       INTEGER,
    last_error      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (next_attempt_ms) WHERE delivered_ms IS NULL AND failed_ms IS NULL;

-- +goose Down
DROP TABLE outbox;
