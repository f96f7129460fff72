-- Identity links are read by event (a person's timeline and sightings) on
-- every request, and by identifier only when a person is erased. Keeping
-- an index by identifier up cost every stored event a write to a random
-- page of it, which a commit then copies whole into the write-ahead log:
-- without it, webhooks took 14 % more requests a second and 100-message
-- batches 17 % more events (docs/benchmarks.md, seventh session). An
-- erasure reads the whole table twice instead, as it already reads the
-- history and the outbox once per identifier.
-- +goose Up
DROP INDEX identity_links_identifier;

-- +goose Down
CREATE INDEX identity_links_identifier ON identity_links (type, value);
