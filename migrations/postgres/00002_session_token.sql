-- A console session belongs to the API token it was opened with, so
-- changing KNIT_API_TOKEN signs everyone out.

-- +goose Up
DELETE FROM web_sessions;
ALTER TABLE web_sessions ADD COLUMN token_sha256 TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE web_sessions DROP COLUMN token_sha256;
