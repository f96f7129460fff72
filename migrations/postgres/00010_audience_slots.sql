-- Scheduled audience runs claimed by one process: every process of a fleet
-- fires the same schedule, and the one that claims the slot computes it.

-- +goose Up
CREATE TABLE audience_slots (
    audience   TEXT   NOT NULL,
    slot_ms    BIGINT NOT NULL, -- the scheduled minute
    claimed_ms BIGINT NOT NULL,
    PRIMARY KEY (audience, slot_ms)
);

-- +goose Down
DROP TABLE audience_slots;
