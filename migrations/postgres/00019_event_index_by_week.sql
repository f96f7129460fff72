-- SQLite only: its events index by name moves from time to week (see the
-- sqlite folder). PostgreSQL's monthly partitions keep (event, ts_ms).
-- This migration keeps both engines at the same version.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
