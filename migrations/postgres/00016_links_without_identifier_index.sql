-- Identity links are read by event (a person's timeline and sightings) on
-- every request, and by identifier only when a person is erased. Keeping
-- an index by identifier up cost every stored event an insert into it: on
-- this engine 100-message batches took 7 % more events a second without it
-- (docs/benchmarks.md, seventh session; 14 to 17 % on SQLite). An erasure
-- reads the whole table twice instead, as it already reads the history
-- and the outbox once per identifier.
-- +goose Up
DROP INDEX identity_links_identifier;

-- +goose Down
CREATE INDEX identity_links_identifier ON identity_links (type, value);
