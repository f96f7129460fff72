-- Two indexes every new identifier or stored event had to be written into,
-- each at a random page that a commit then copies whole into the
-- write-ahead log; dropping them took webhooks from 4,500 to 5,100 and more
-- requests a second (docs/benchmarks.md, seventh session).
--
-- Identity links by identifier: links are read by event (a timeline,
-- sightings) on every request, and by identifier only when a person is
-- erased, which now reads the table twice, as it already reads the
-- history and, for each identifier, the outbox.
--
-- Identities by value alone: only the profile search used it, and it now
-- probes the key (type, value) once for each type.
-- +goose Up
DROP INDEX identity_links_identifier;
DROP INDEX identities_value;

-- +goose Down
CREATE INDEX identities_value ON identities (value);
CREATE INDEX identity_links_identifier ON identity_links (type, value);
