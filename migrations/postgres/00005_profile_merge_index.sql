-- Merge caps count the profiles merged into one: index that lookup.

-- +goose Up
CREATE INDEX profiles_merged_into ON profiles (merged_into);

-- +goose Down
DROP INDEX profiles_merged_into;
