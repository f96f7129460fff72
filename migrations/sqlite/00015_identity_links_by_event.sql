-- An identity link names the stored event by its row id, not its
-- messageId: Segment's messageIds are random, so a key that starts with
-- one puts every new link on a random page of the table, and ingestion of
-- random ids was about a fifth slower for it. Event ids only grow, so new
-- links go to the end. Links whose event is gone are not carried over.
-- +goose Up
CREATE TABLE identity_links_by_event (
    event_id INTEGER NOT NULL,
    type     TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (event_id, type, value)
) WITHOUT ROWID;
INSERT INTO identity_links_by_event (event_id, type, value)
SELECT e.id, l.type, l.value FROM identity_links l
JOIN events e ON e.message_id = l.message_id;
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
SELECT e.message_id, l.type, l.value FROM identity_links l
JOIN events e ON e.id = l.event_id;
DROP TABLE identity_links;
ALTER TABLE identity_links_by_message RENAME TO identity_links;
CREATE INDEX identity_links_identifier ON identity_links (type, value);
