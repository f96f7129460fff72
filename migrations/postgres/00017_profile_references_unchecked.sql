-- Events, identities and traits name their profile without a foreign key.
-- Checking one made PostgreSQL lock the profile's row for every new row
-- (a write to its page and to the write-ahead log, once a profile a
-- transaction): 100-message batches took 12 to 13 % more events a second
-- without the three (docs/benchmarks.md, seventh session). knit never
-- deletes a profile (an erasure retires it) and writes these rows only
-- with a profile it has just read or made; SQLite keeps the keys, where
-- checking one is a read, so the test suite still catches a row that
-- names no profile.
-- +goose Up
ALTER TABLE events DROP CONSTRAINT events_profile_id_fkey1;
ALTER TABLE identities DROP CONSTRAINT identities_profile_id_fkey;
ALTER TABLE traits DROP CONSTRAINT traits_profile_id_fkey;

-- +goose Down
ALTER TABLE traits ADD CONSTRAINT traits_profile_id_fkey
    FOREIGN KEY (profile_id) REFERENCES profiles (id);
ALTER TABLE identities ADD CONSTRAINT identities_profile_id_fkey
    FOREIGN KEY (profile_id) REFERENCES profiles (id);
ALTER TABLE events ADD CONSTRAINT events_profile_id_fkey1
    FOREIGN KEY (profile_id) REFERENCES profiles (id);
