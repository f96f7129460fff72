package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	// The database drivers (only cmd/ imports them): SQLite linked in,
	// PostgreSQL through pgx.
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/mattn/go-sqlite3"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// app is the wired core every command shares.
type app struct {
	db  *sqldb.DB
	dsn string // what --db named
	// retentionMonths is how many months of events serve keeps (0: all).
	retentionMonths int
	settings        settings
	now             func() time.Time
	log             *slog.Logger
	store           *resolver.Store
	// committer shares write transactions among concurrent ingestion
	// requests; nil in a process that does not ingest.
	committer *resolver.GroupCommitter
	runner    *audiences.Runner
}

// openApp loads the configuration, opens and migrates the database and
// builds the core. The caller closes app.db.
func openApp(ctx context.Context, flags commonFlags, getenv env, stderr io.Writer) (*app, error) {
	log, err := newLogger(getenv("KNIT_LOG_LEVEL"), stderr)
	if err != nil {
		return nil, err
	}
	if flags.mustExist && sqldb.DialectFromDSN(flags.db) == sqldb.SQLite {
		if _, err := os.Stat(flags.db); err != nil {
			return nil, fmt.Errorf("--db %s: no database there (%w); "+
				"give the file knit serve or knit import uses", flags.db, err)
		}
	}
	cfg, err := loadSettings(flags.config)
	if err != nil {
		return nil, err
	}
	queries, err := parseAudienceQueries(getenv("KNIT_AUDIENCE_QUERIES"))
	if err != nil {
		return nil, err
	}
	now, err := clock(flags.clock)
	if err != nil {
		return nil, err
	}

	db, err := openDB(ctx, flags.db, log)
	if err != nil {
		return nil, err
	}
	a := &app{db: db, dsn: flags.db, settings: cfg, now: now, log: log}
	a.store = resolver.NewStore(db, cfg.Rules, now, log.With("component", "resolver"))
	a.runner = audiences.NewRunner(db, cfg.Audiences, now, log.With("component", "audiences"))
	a.runner.SetQueriesPerAudience(queries)
	return a, nil
}

// maxAudienceQueries bounds KNIT_AUDIENCE_QUERIES: each query of an
// audience holds a connection of the 20 in knit's PostgreSQL pool.
const maxAudienceQueries = 8

// parseAudienceQueries reads KNIT_AUDIENCE_QUERIES, how many queries
// compute one audience at once on PostgreSQL; unset is the runner's
// default.
func parseAudienceQueries(text string) (int, error) {
	if strings.TrimSpace(text) == "" {
		return audiences.DefaultQueriesPerAudience, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil || n < 1 || n > maxAudienceQueries {
		return 0, fmt.Errorf("%w: KNIT_AUDIENCE_QUERIES %q: want a whole number from 1 "+
			"(one query an audience) to %d", errUsage, text, maxAudienceQueries)
	}
	return n, nil
}

// openDB opens the database named by dsn (a SQLite file path or a
// postgres:// URL) and applies pending migrations.
func openDB(ctx context.Context, dsn string, log *slog.Logger) (*sqldb.DB, error) {
	dialect := sqldb.DialectFromDSN(dsn)
	db, err := openEngine(ctx, dsn, dialect)
	if err != nil {
		return nil, err
	}

	applied, err := migrations.Up(ctx, db.DB.DB, string(dialect))
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	if applied > 0 {
		log.Info("database migrated", "db", redactDSN(dsn), "migrations_applied", applied)
	}
	return db, nil
}

func openEngine(ctx context.Context, dsn string, dialect sqldb.Dialect) (*sqldb.DB, error) {
	if dialect == sqldb.Postgres {
		db, err := sqldb.OpenPostgres(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("--db %s: %w", redactDSN(dsn), err)
		}
		return db, nil
	}

	db, err := sqldb.OpenSQLite(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := db.CheckWAL(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// redactDSN hides a password in a database URL.
func redactDSN(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	creds, host, ok := strings.Cut(rest, "@")
	if !ok {
		return dsn
	}
	user, _, hasPassword := strings.Cut(creds, ":")
	if !hasPassword {
		return dsn
	}
	return scheme + "://" + user + ":***@" + host
}

func newLogger(level string, out io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(orDefault(level, "info"))); err != nil {
		return nil, fmt.Errorf("KNIT_LOG_LEVEL %q: use debug, info, warn or error", level)
	}
	text := slog.NewTextHandler(out, &slog.HandlerOptions{Level: lvl})
	return slog.New(requestIDHandler{text}), nil
}

// requestIDHandler adds request_id to every record logged with a context
// that carries one (resolver.WithRequestID) and does not name it already.
type requestIDHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h requestIDHandler) Handle(ctx context.Context, record slog.Record) error {
	id := resolver.RequestIDFrom(ctx)
	if id != "" && !hasAttr(record, "request_id") {
		record = record.Clone()
		record.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, record)
}

// WithAttrs implements slog.Handler.
func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

func hasAttr(record slog.Record, key string) bool {
	found := false
	record.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}

// describeDatabase names the engine and, for a file, its path, for the
// console's settings page; a server URL is shown without its password.
func describeDatabase(dsn string) string {
	if sqldb.DialectFromDSN(dsn) == sqldb.Postgres {
		return "PostgreSQL (" + redactDSN(dsn) + ")"
	}
	return "SQLite (" + dsn + ")"
}
