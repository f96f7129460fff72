package migrations

import (
	"context"
	"database/sql"
)

// UpTo applies the dialect's migrations up to and including version, for
// tests of what one migration does to rows already stored.
func UpTo(ctx context.Context, db *sql.DB, dialect string, version int64) error {
	provider, err := newProvider(db, dialect)
	if err != nil {
		return err
	}
	_, err = provider.UpTo(ctx, version)
	return err
}

// DownTo rolls the dialect's migrations back to version.
func DownTo(ctx context.Context, db *sql.DB, dialect string, version int64) error {
	provider, err := newProvider(db, dialect)
	if err != nil {
		return err
	}
	_, err = provider.DownTo(ctx, version)
	return err
}
