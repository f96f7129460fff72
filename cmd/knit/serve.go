package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/migrations"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web"
	"github.com/knit-cdp/knit/web/httpx"
	"github.com/knit-cdp/knit/webhook"
)

const shutdownGrace = 15 * time.Second

const serveSummary = `knit serve [flags]: serve the webhook, the tracking API, the export and
Profile APIs and the console; compute audiences on their schedules; migrate the
database at start. Stops cleanly on SIGINT or SIGTERM.

Environment (secrets are never flags):
  KNIT_WEBHOOK_SECRET  Segment's shared secret; /webhook then requires X-Signature
  KNIT_WRITE_KEYS      comma-separated write keys for the tracking API (/v1/*)
  KNIT_API_TOKEN       token for the APIs and console; generated on first start
                       when unset, stored hashed and printed once
  KNIT_ADMIN_PASSWORD  a password that also signs in to the console (not the APIs)
  KNIT_SPACE_ID        the only Profile API space_id accepted (any when unset)
  KNIT_LOG_LEVEL       debug, info (default), warn or error
  KNIT_EVENT_RETENTION_MONTHS  PostgreSQL: whole months of events kept beyond
                       the current one (older months are dropped within the hour); 0 keeps all
  KNIT_AUDIENCE_QUERIES  PostgreSQL: queries computing one audience at once, each
                       over a share of the profiles (default 2, 1 to 8)` +
	limitsHelp

func runServe(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("knit serve", serveSummary, stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	addr := fs.String("addr", orDefault(getenv("KNIT_ADDR"), ":8080"),
		"address to listen on (env KNIT_ADDR)")
	roleList := fs.String("roles", getenv("KNIT_ROLES"), "what this process does, "+
		"comma-separated: ingest (webhook, tracking API), web (console, export and "+
		"Profile APIs), scheduler (audience runs, deliveries); all when empty "+
		"(env KNIT_ROLES)")
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return err
	}
	if len(positional) > 0 {
		return fmt.Errorf("%w: knit serve takes no arguments, got %q", errUsage, positional)
	}
	taken, err := parseRoles(*roleList)
	if err != nil {
		return err
	}
	retention, err := parseRetention(getenv("KNIT_EVENT_RETENTION_MONTHS"))
	if err != nil {
		return err
	}
	limits, err := parseServeLimits(getenv)
	if err != nil {
		return err
	}

	// Listen first: a start that cannot serve must not use up the token
	// that is printed only once.
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	defer listener.Close()

	a, err := openApp(ctx, flags, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.db.Close()
	tuneGC(ctx, getenv, a.log)

	server, scheduler, err := a.buildServer(ctx, getenv, stdout, taken, limits)
	if err != nil {
		return err
	}
	a.log.Info("knit listening", "addr", listener.Addr().String(),
		"db", redactDSN(flags.db), "roles", taken.String())
	a.retentionMonths = retention
	return a.serveUntilDone(ctx, server, listener, scheduler)
}

// buildServer wires the HTTP handlers and the scheduler.
// A process without the scheduler role returns a nil scheduler.
func (a *app) buildServer(ctx context.Context, getenv env, stdout io.Writer,
	taken roles, limits serveLimits) (*http.Server, *audiences.Scheduler, error) {
	auth, generated, err := web.EnsureToken(ctx, a.db, getenv("KNIT_API_TOKEN"), a.now)
	if err != nil {
		return nil, nil, err
	}
	if generated != "" {
		fmt.Fprintf(stdout, "knit: generated API token (shown once; keep it): %s\n", generated)
	}
	auth.SetAdminPassword(getenv("KNIT_ADMIN_PASSWORD"))
	scheduler, err := a.buildScheduler(ctx, taken)
	if err != nil {
		return nil, nil, err
	}

	metered := newMetrics(a.runner)
	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.UseRawPath = true
	router.UnescapePathValues = true
	router.Use(httpx.RequestID(), httpx.Recover(a.log), requestLog(a.log),
		metered.observeRequests())
	a.registerReady(router)
	router.GET("/metrics", auth.Require, metered.handler())
	if taken[roleIngest] {
		a.buildWebhook(getenv, metered, limits.ingest).Register(router)
	}
	if taken[roleWeb] {
		a.buildSite(getenv, auth).Register(router)
	} else {
		registerHealth(router, a.log)
	}

	return &http.Server{
		Handler:           router,
		ReadHeaderTimeout: limits.headerTimeout,
		ReadTimeout:       limits.readTimeout,
		IdleTimeout:       120 * time.Second,
	}, scheduler, nil
}

// buildWebhook wires the ingestion edge, counted by metered.
func (a *app) buildWebhook(getenv env, metered *metrics,
	limits webhook.Limits) *webhook.Handler {
	if getenv("KNIT_WEBHOOK_SECRET") == "" {
		a.log.Warn("KNIT_WEBHOOK_SECRET is not set: /webhook accepts unsigned requests")
	}
	a.committer = resolver.NewGroupCommitter(a.store,
		resolver.GroupOptions{Observe: metered.observeGroup})
	return webhook.New(meteredIngester{inner: a.committer, metrics: metered}, webhook.Config{
		Secret:     getenv("KNIT_WEBHOOK_SECRET"),
		WriteKeys:  splitList(getenv("KNIT_WRITE_KEYS")),
		Now:        a.now,
		Rejections: meteredRejections{inner: a.store, metrics: metered},
		Limits:     limits,
	}, a.log.With("component", "webhook"))
}

// buildSite wires the console and the export and Profile APIs.
func (a *app) buildSite(getenv env, auth *web.Auth) *web.Server {
	site := web.NewServer(a.runner, resolver.NewProfiles(a.db).WithRules(a.settings.Rules),
		auth, getenv("KNIT_SPACE_ID"), a.log.With("component", "web"))
	site.SetAdmin(a.store)
	site.SetClock(a.now)
	site.SetAuditLog(resolver.NewAuditLog(a.db))
	site.SetSettings(web.Settings{
		Rules:            a.settings.Rules,
		WebhookSecretSet: getenv("KNIT_WEBHOOK_SECRET") != "",
		WriteKeys:        len(splitList(getenv("KNIT_WRITE_KEYS"))),
		SpaceID:          getenv("KNIT_SPACE_ID"),
		AdminPasswordSet: getenv("KNIT_ADMIN_PASSWORD") != "",
		Database:         describeDatabase(a.dsn),
	})
	return site
}

// buildScheduler prepares the audience schedule for a process with the
// scheduler role, and nil for one without.
func (a *app) buildScheduler(ctx context.Context, taken roles) (*audiences.Scheduler, error) {
	if !taken[roleScheduler] {
		return nil, nil
	}
	if err := a.runner.RecoverInterrupted(ctx); err != nil {
		return nil, err
	}
	return audiences.NewScheduler(a.runner, a.log.With("component", "scheduler"))
}

// registerReady answers /readyz: 200 when the database answers, no
// migration is pending and ingestion has not stopped after a failed sync
// of the log (a load balancer may send traffic), 503 with the reason
// otherwise. /healthz only says the process is alive.
func (a *app) registerReady(router *gin.Engine) {
	ready := func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		pending, err := migrations.Pending(ctx, a.db.DB.DB, string(a.db.Dialect()))
		switch {
		case err != nil:
			a.log.Warn("not ready", "error", err)
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable",
				"reason": "the database does not answer"})
		case pending > 0:
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable",
				"reason": fmt.Sprintf("%d migrations are pending", pending)})
		case a.committer != nil && a.committer.DiskFailed():
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable",
				"reason": "the disk failed to confirm a write; check the disk " +
					"and restart knit"})
		default:
			c.JSON(http.StatusOK, gin.H{"status": "ready"})
		}
	}
	router.GET("/readyz", ready)
	router.HEAD("/readyz", ready)
}

// registerHealth answers /healthz on a process that serves no web role,
// and unknown paths with the same JSON 404 the web role answers.
func registerHealth(router *gin.Engine, log *slog.Logger) {
	healthy := func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }
	router.GET("/healthz", healthy)
	router.HEAD("/healthz", healthy)
	router.NoRoute(func(c *gin.Context) {
		httpx.Error(c, log, resolver.Errorf(resolver.ENotFound,
			"no endpoint %s %s on this process: its roles do not include it",
			c.Request.Method, c.Request.URL.Path))
	})
}

// serveUntilDone serves until ctx ends (SIGINT or SIGTERM), then shuts down
// in order: abort running audience computations (their previous results
// stay), stop taking requests and let in-flight ones finish, stop the
// scheduler, and let the caller close the database.
func (a *app) serveUntilDone(ctx context.Context, server *http.Server,
	listener net.Listener, scheduler *audiences.Scheduler) error {
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	stopBackground := a.startBackground(scheduler)

	var serveErr error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down")
	case serveErr = <-served:
	}

	a.runner.Abort()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		a.log.Error("http shutdown", "error", err)
	}
	if a.committer != nil {
		a.committer.Close() // after the requests that use it have drained
	}
	stopBackground()
	a.log.Info("stopped")

	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}

// startBackground starts the scheduler, the outbox delivery loop and the
// hourly upkeep of the events table of a process with the scheduler role,
// and returns what stops them all.
func (a *app) startBackground(scheduler *audiences.Scheduler) (stop func()) {
	if scheduler == nil {
		return func() {}
	}
	scheduler.Start()
	loopsCtx, stopLoops := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	loops.Go(func() {
		deliverUntilDone(loopsCtx, a.runner, a.log.With("component", "outbox"))
	})
	loops.Go(func() {
		maintainUntilDone(loopsCtx, a.db, a.now, a.retentionMonths,
			a.log.With("component", "upkeep"))
	})
	return func() {
		scheduler.Stop()
		stopLoops()
		loops.Wait()
	}
}

func splitList(text string) []string {
	var out []string
	for _, item := range strings.Split(text, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// requestLog logs one line per request with stable keys.
func requestLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		log.Debug("request", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", c.Writer.Status(), "duration_ms", time.Since(start).Milliseconds(),
			"bytes", c.Writer.Size(), "request_id", httpx.RequestIDOf(c))
	}
}
