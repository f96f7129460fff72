-- Message ids of erased people, so that a retry Segment sends after a
-- privacy deletion does not bring the person back. Message ids are random
-- and carry no personal data.

-- +goose Up
CREATE TABLE erased_messages (
    message_id TEXT PRIMARY KEY
);

-- +goose Down
DROP TABLE erased_messages;
