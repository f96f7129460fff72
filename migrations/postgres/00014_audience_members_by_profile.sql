-- A person's audiences (the Profile API's traits, the console's person
-- page) are read by profile: without this index each lookup read every
-- member of every audience (40-65 ms a request at a million members).
-- +goose Up
CREATE INDEX audience_members_profile ON audience_members (profile_id);

-- +goose Down
DROP INDEX audience_members_profile;
