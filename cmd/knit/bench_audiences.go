package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

const benchAudiencesSummary = `knit bench audiences [flags]: compute each audience (or --audience)
--runs times with knit's own runner on --db, and report each run's
seconds, the median, the members, and this process's peak memory.

Each run is a real run, as a scheduled one: it computes the audience at
knit's clock (now, or --clock), replaces the stored result, records the
run in the history and queues entries and exits for the audience's
destinations, if it has any. The members are what a scheduled run at that
time would store, so the result keeps its meaning; only the run history
grows. Give --config when the server uses one.

Peak memory is VmHWM from /proc/self/status, reset before each run where
Linux allows (clear_refs), so each run's peak is its own.

On PostgreSQL the planner needs statistics: after a bulk load (knit bench
seed), before autovacuum has analyzed the tables, or on a server running
without autovacuum, plans can be thousands of times slower. The report
names tables never analyzed; --analyze runs ANALYZE on the tables
audiences read first, and reports how long it took.`

// benchAudienceRun is one computation of one audience.
type benchAudienceRun struct {
	Seconds   float64 `json:"seconds"`
	Members   int     `json:"members"`
	Entered   int     `json:"entered"`
	Exited    int     `json:"exited"`
	PeakBytes int64   `json:"peak_bytes"`
}

// benchAudienceResult is every run of one audience.
type benchAudienceResult struct {
	Name          string             `json:"name"`
	Runs          []benchAudienceRun `json:"runs"`
	MedianSeconds float64            `json:"median_seconds"`
	Members       int                `json:"members"` // of the last run
}

// benchAudiencesReport is what `knit bench audiences` prints.
type benchAudiencesReport struct {
	Database       string                `json:"database"`
	EvaluatedAt    string                `json:"evaluated_at"`
	Audiences      []benchAudienceResult `json:"audiences"`
	PeakBytes      int64                 `json:"peak_bytes"` // the whole process
	PeakPerRun     bool                  `json:"peak_per_run"`
	AnalyzeSeconds float64               `json:"analyze_seconds,omitempty"`
	NotAnalyzed    []string              `json:"not_analyzed,omitempty"`
}

func runBenchAudiences(ctx context.Context, args []string, getenv env, stdout,
	stderr io.Writer) error {
	fs := newFlagSet("knit bench audiences", benchAudiencesSummary, stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	name := fs.String("audience", "", "compute only this audience (default: every one, "+
		"in run order)")
	runs := fs.Int("runs", 3, "runs of each audience")
	analyze := fs.Bool("analyze", false, "PostgreSQL: ANALYZE the tables audiences "+
		"read before the runs")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return err
	}
	switch {
	case len(positional) > 0:
		return fmt.Errorf("%w: knit bench audiences takes no arguments; "+
			"name one audience with --audience", errUsage)
	case *runs < 1:
		return fmt.Errorf("%w: --runs must be at least 1", errUsage)
	}

	flags.mustExist = true
	a, err := openApp(ctx, flags, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.db.Close()
	names := a.runner.RunOrder()
	if *name != "" {
		if _, err := a.runner.Definition(*name); err != nil {
			return err
		}
		names = []string{*name}
	}
	report := &benchAudiencesReport{Database: describeDatabase(flags.db),
		EvaluatedAt: audiences.FormatTime(a.now())}
	if err := a.prepareStatistics(ctx, *analyze, report); err != nil {
		return err
	}
	runErr := a.benchAudiences(ctx, names, *runs, report)
	if *jsonOut {
		err = writeIndentedJSON(stdout, report)
	} else {
		err = report.writeText(stdout)
	}
	return errors.Join(runErr, err)
}

// benchAudiences runs each audience runs times and fills in the report.
func (a *app) benchAudiences(ctx context.Context, names []string, runs int,
	report *benchAudiencesReport) error {
	pid := os.Getpid()
	report.PeakPerRun = true
	for _, name := range names {
		result := benchAudienceResult{Name: name}
		for range runs {
			if resetPeakMemory(pid) != nil {
				report.PeakPerRun = false
			}
			start := time.Now()
			run, err := a.runner.Run(ctx, name)
			took := time.Since(start)
			if err != nil {
				return fmt.Errorf("knit bench audiences: %w", err)
			}
			peak, _, _ := readProcMemory(pid)
			report.PeakBytes = max(report.PeakBytes, peak)
			result.Runs = append(result.Runs, benchAudienceRun{Seconds: took.Seconds(),
				Members: run.Size, Entered: run.Entered, Exited: run.Exited,
				PeakBytes: peak})
			result.Members = run.Size
		}
		result.MedianSeconds = medianSeconds(result.Runs)
		report.Audiences = append(report.Audiences, result)
	}
	return nil
}

// prepareStatistics, on PostgreSQL, analyzes the tables audiences read
// when asked to, and else names those never analyzed.
func (a *app) prepareStatistics(ctx context.Context, analyze bool,
	report *benchAudiencesReport) error {
	if a.db.Dialect() != sqldb.Postgres {
		if analyze {
			return fmt.Errorf("%w: --analyze is for PostgreSQL; SQLite plans "+
				"without statistics", errUsage)
		}
		return nil
	}
	tables := "events, profiles, identities, traits, audience_members"
	if analyze {
		start := time.Now()
		if _, err := a.db.ExecContext(ctx, "ANALYZE "+tables); err != nil {
			return fmt.Errorf("analyze %s: %w", tables, err)
		}
		report.AnalyzeSeconds = time.Since(start).Seconds()
		return nil
	}
	// Partitions of events count as themselves: autovacuum analyzes them,
	// never the partitioned parent.
	err := a.db.SelectContext(ctx, &report.NotAnalyzed, `SELECT relname
		FROM pg_stat_user_tables WHERE schemaname = current_schema()
		AND n_live_tup > 0 AND last_analyze IS NULL AND last_autoanalyze IS NULL
		AND (relname IN ('profiles', 'identities', 'traits', 'audience_members')
		     OR relname LIKE 'events%') ORDER BY relname`)
	if err != nil {
		return fmt.Errorf("read table statistics: %w", err)
	}
	return nil
}

// resetPeakMemory sets process pid's VmHWM back to its current resident
// size (Linux's clear_refs), so the next peak read is the peak since now.
func resetPeakMemory(pid int) error {
	err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
	if err != nil {
		return fmt.Errorf("reset the peak memory of process %d: %w", pid, err)
	}
	return nil
}

func medianSeconds(runs []benchAudienceRun) float64 {
	seconds := make([]float64, len(runs))
	for i, r := range runs {
		seconds[i] = r.Seconds
	}
	slices.Sort(seconds)
	n := len(seconds)
	if n%2 == 1 {
		return seconds[n/2]
	}
	return (seconds[n/2-1] + seconds[n/2]) / 2
}

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func (r *benchAudiencesReport) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "knit bench audiences: %s, evaluated at %s\n", r.Database,
		r.EvaluatedAt)
	if r.AnalyzeSeconds > 0 {
		fmt.Fprintf(&b, "  ANALYZE took %.1f s\n", r.AnalyzeSeconds)
	}
	if len(r.NotAnalyzed) > 0 {
		fmt.Fprintf(&b, "  warning: never analyzed: %s; plans may be far slower "+
			"(give --analyze)\n", strings.Join(r.NotAnalyzed, ", "))
	}
	for _, a := range r.Audiences {
		times := make([]string, len(a.Runs))
		var peak int64
		for i, run := range a.Runs {
			times[i] = fmt.Sprintf("%.2f", run.Seconds)
			peak = max(peak, run.PeakBytes)
		}
		first := a.Runs[0]
		fmt.Fprintf(&b, "  %-20s median %.2f s (runs %s s), %d members (first run: "+
			"%d entered, %d exited), peak %.1f MiB\n", a.Name, a.MedianSeconds,
			strings.Join(times, ", "), a.Members, first.Entered, first.Exited, mib(peak))
	}
	scope := "each run's own peak"
	if !r.PeakPerRun {
		scope = "since the process started"
	}
	fmt.Fprintf(&b, "  process peak memory %.1f MiB (VmHWM; per audience: %s)\n",
		mib(r.PeakBytes), scope)
	_, err := io.WriteString(w, b.String())
	return err
}
