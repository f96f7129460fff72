-- The audit log: every change an operator or Segment asked for (unlink,
-- delete, run now, token reset), with who asked and when. actor names a
-- kind of credential ("api:token", "console:admin", "cli", "segment:webhook"),
-- never a secret. Erasing a person blanks what an entry said about them.
-- A console session remembers which credential opened it, so its actions
-- name it.

-- +goose Up
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL DEFAULT '',
    detail     TEXT    NOT NULL DEFAULT '{}', -- a JSON object
    request_id TEXT    NOT NULL DEFAULT ''
);

ALTER TABLE web_sessions ADD COLUMN opened_with TEXT NOT NULL DEFAULT 'token';

-- +goose Down
ALTER TABLE web_sessions DROP COLUMN opened_with;
DROP TABLE audit_log;
