-- Identity links name their event by its id, which knit hands out in
-- increasing order, instead of by its messageId: Segment's messageIds are
-- random, so a key that began with one put every new link on a page of its
-- own, and that index cost about a fifth of the time a message took to
-- store. The messageId stays beside the id, for links whose event is gone.
-- Links whose event is gone already (PostgreSQL's retention drops whole
-- months of events and keeps their links) get ids below zero and below
-- any stored event's, one per message, which no event ever takes.

-- +goose Up
CREATE TABLE identity_links_by_event (
    event_id   INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    PRIMARY KEY (event_id, type, value)
) WITHOUT ROWID;

INSERT INTO identity_links_by_event (event_id, type, value, message_id)
SELECT e.id, l.type, l.value, l.message_id
FROM identity_links l JOIN events e ON e.message_id = l.message_id;

INSERT INTO identity_links_by_event (event_id, type, value, message_id)
SELECT MIN(0, (SELECT COALESCE(MIN(id), 0) FROM events))
    - DENSE_RANK() OVER (ORDER BY l.message_id),
    l.type, l.value, l.message_id
FROM identity_links l
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = l.message_id);

DROP TABLE identity_links;
ALTER TABLE identity_links_by_event RENAME TO identity_links;
CREATE INDEX identity_links_identifier ON identity_links (type, value);

-- +goose Down
CREATE TABLE identity_links_by_message (
    message_id TEXT NOT NULL,
    type       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (message_id, type, value)
);
INSERT INTO identity_links_by_message (message_id, type, value)
SELECT message_id, type, value FROM identity_links WHERE true ON CONFLICT DO NOTHING;
DROP TABLE identity_links;
ALTER TABLE identity_links_by_message RENAME TO identity_links;
CREATE INDEX identity_links_identifier ON identity_links (type, value);
