// Package migrations holds knit's schema as embedded SQL files, one folder
// per engine, and applies them with goose.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Up applies every pending migration for the engine named by dialect
// ("sqlite" or "postgres") and returns how many it applied.
func Up(ctx context.Context, db *sql.DB, dialect string) (int, error) {
	provider, err := newProvider(db, dialect)
	if err != nil {
		return 0, err
	}

	results, err := provider.Up(ctx)
	if err != nil {
		return len(results), fmt.Errorf("apply migrations: %w", err)
	}
	return len(results), nil
}

// Pending reports how many migrations have not been applied yet.
func Pending(ctx context.Context, db *sql.DB, dialect string) (int, error) {
	provider, err := newProvider(db, dialect)
	if err != nil {
		return 0, err
	}

	statuses, err := provider.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("read migration status: %w", err)
	}
	pending := 0
	for _, status := range statuses {
		if status.State == goose.StatePending {
			pending++
		}
	}
	return pending, nil
}

func newProvider(db *sql.DB, dialect string) (*goose.Provider, error) {
	engines := map[string]goose.Dialect{
		"sqlite":   goose.DialectSQLite3,
		"postgres": goose.DialectPostgres,
	}
	engine, ok := engines[dialect]
	if !ok {
		return nil, fmt.Errorf("migrations: no schema for engine %q", dialect)
	}

	dir, err := fs.Sub(files, dialect)
	if err != nil {
		return nil, fmt.Errorf("migrations: open %s folder: %w", dialect, err)
	}
	var options []goose.ProviderOption
	if dialect == "postgres" {
		locker, err := schemaLocker(db)
		if err != nil {
			return nil, err
		}
		options = append(options, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(engine, db, dir, options...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return provider, nil
}

// schemaLocker makes processes that start together take turns at
// migrating one PostgreSQL schema. The lock is named after the schema, so
// databases in other schemas of the same server migrate side by side; a
// waiting process checks again every second, for at most five minutes.
func schemaLocker(db *sql.DB) (lock.SessionLocker, error) {
	var schema sql.NullString
	if err := db.QueryRow("SELECT current_schema()").Scan(&schema); err != nil {
		return nil, fmt.Errorf("migrations: read the current schema: %w", err)
	}
	if !schema.Valid {
		return nil, errors.New("migrations: no schema of the connection's search_path " +
			"exists: create it first (CREATE SCHEMA name) or name one that does")
	}
	name := fnv.New64a()
	name.Write([]byte("knit-migrations:" + schema.String))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(name.Sum64()>>1)),
		lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return locker, nil
}
