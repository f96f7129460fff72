-- Events are partitioned by month on PostgreSQL only (see the postgres
-- folder); SQLite keeps one table, whose message_id is unique already.
-- This migration keeps both engines at the same version.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
