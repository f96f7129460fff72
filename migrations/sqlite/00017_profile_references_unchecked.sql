-- PostgreSQL only: there, checking the foreign keys from events, identities
-- and traits to profiles locked a profile's row for each new row (see the
-- postgres folder). SQLite keeps them: checking one is a read. This
-- migration keeps both engines at the same version.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
