-- SQLite only: there, audience_changes ids could be reused after an
-- erasure (see the sqlite folder). PostgreSQL's identity column takes its
-- ids from a sequence, which never hands one out twice. This migration
-- keeps both engines at the same version.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
