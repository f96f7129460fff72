-- PostgreSQL only: its event_ids is filled once a statement instead of
-- once a row (see the postgres folder). SQLite's events.message_id is
-- unique by itself. This migration keeps both engines at the same version.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
