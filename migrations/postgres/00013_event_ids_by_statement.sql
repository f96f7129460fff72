-- event_ids learns a statement's message ids in one INSERT after the
-- statement, from its transition table, instead of one trigger call a row:
-- a batch of events cost a PL/pgSQL call and an INSERT per event before.
-- A second copy of a message still fails the statement that brings it.
-- +goose Up
DROP TRIGGER events_id_once ON events;
DROP FUNCTION knit_event_id_once();
-- +goose StatementBegin
CREATE FUNCTION knit_event_ids_once() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_ids (message_id) SELECT message_id FROM new_events;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER events_ids_once AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION knit_event_ids_once();

-- +goose Down
DROP TRIGGER events_ids_once ON events;
DROP FUNCTION knit_event_ids_once();
-- +goose StatementBegin
CREATE FUNCTION knit_event_id_once() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_ids (message_id) VALUES (NEW.message_id);
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER events_id_once BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION knit_event_id_once();
