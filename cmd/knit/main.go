// Command knit is a self-hosted, Segment-compatible destination: it takes
// Segment events, stitches them into one profile per person and computes
// audiences for marketers and email tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	// Time zone data in the binary, so audience schedules can name zones on
	// systems (and images) without a zone database.
	_ "time/tzdata"

	"github.com/knit-cdp/knit/resolver"
)

const usage = `knit: a self-hosted, Segment-compatible destination.

Usage:
  knit serve [flags]                      serve HTTP, run the scheduler
  knit import [flags] FILE                load NDJSON Segment messages (.gz too)
  knit audiences run [flags] [NAME]       compute one or every audience now
  knit audiences export [flags] NAME      write an audience to stdout
  knit token reset [flags]                make a new API token (the old one stops working)
  knit config check FILE                  check a configuration file, naming each problem
  knit audiences preview [flags] FILE NAME  an audience's size and sample, saving nothing
  knit identity preview --config NEW.yaml what new identity rules would change
  knit identity unlink [flags] TYPE:VALUE block an identifier, rebuild its profile
  knit profiles delete [flags] TYPE:VALUE erase a person (privacy request)
  knit bench [run] [flags]                load a running server, report events/s and latency
  knit bench seed [flags]                 write a deterministic data set for benchmarks
  knit bench audiences [flags]            time audience runs on a database
  knit bench export [flags]               time an audience's CSV download from a server
  knit bench profiles [flags]             load a server's Profile API, report latency

Run "knit COMMAND --help" for a command's flags. Every flag also has an
environment variable, shown in its help; a flag given on the command line
wins. Secrets come only from the environment:
  KNIT_WEBHOOK_SECRET  Segment's shared secret; /webhook then requires X-Signature
  KNIT_WRITE_KEYS      comma-separated write keys for the tracking API (/v1/*)
  KNIT_API_TOKEN       token for the APIs and the console; generated if unset
  KNIT_SPACE_ID        the only Profile API space_id accepted (any if unset)
  KNIT_LOG_LEVEL       debug, info (default), warn or error
`

// errUsage marks errors whose message is already the help text to show.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, stop catching them: a second one ends the
	// process at once instead of waiting for a clean shutdown.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()

	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		if err != errUsage {
			fmt.Fprintf(os.Stderr, "knit: %v\n", err)
		}
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "knit: %s\n", describe(err))
		os.Exit(1)
	}
}

// env reads configuration from the process environment.
type env func(string) string

// run executes the command line args. It returns flag.ErrHelp after
// printing help, errUsage after printing a usage problem, and any other
// error for a failure.
func run(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}

	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], getenv, stdout, stderr)
	case "import":
		return runImport(ctx, args[1:], getenv, stdout, stderr)
	case "audiences":
		return runAudiences(ctx, args[1:], getenv, stdout, stderr)
	case "token":
		return runToken(ctx, args[1:], getenv, stdout, stderr)
	case "identity":
		return runIdentity(ctx, args[1:], getenv, stdout, stderr)
	case "profiles":
		return runProfiles(ctx, args[1:], getenv, stdout, stderr)
	case "config":
		return runConfigCheck(args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	default:
		fmt.Fprintf(stderr, "knit: unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
}

// commonFlags are the flags every command takes.
type commonFlags struct {
	db     string
	config string
	clock  string
	// mustExist refuses a --db file that does not exist yet, for commands
	// that only read what others stored.
	mustExist bool
}

func (c *commonFlags) register(fs *flag.FlagSet, getenv env) {
	fs.StringVar(&c.db, "db", orDefault(getenv("KNIT_DB"), "knit.db"),
		"database: a SQLite file path, or a postgres:// URL\n"+
			"(env KNIT_DB)")
	fs.StringVar(&c.config, "config", getenv("KNIT_CONFIG"),
		"YAML file of identity rules and audiences; built-in defaults when empty\n"+
			"(env KNIT_CONFIG)")
	fs.StringVar(&c.clock, "clock", getenv("KNIT_CLOCK"),
		"start knit's clock at this ISO-8601 time instead of now, for replays\n"+
			"and tests; it then runs at real speed (env KNIT_CLOCK)")
}

// newFlagSet returns a flag set whose help starts with summary.
func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nFlags:\n", summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("knit audiences export NAME --format json"), and turns flag errors into
// errUsage. The positional arguments are left in positional.
func parseFlags(fs *flag.FlagSet, args []string, positional *[]string) error {
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			return nil
		}
		*positional = append(*positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func orDefault(value, fallback string) string {
	if value == "" {
		return fallback
	}
	return value
}

// describe says what went wrong in the words knit gives callers, keeping
// the wrapped detail for knit's own failures and the database's (which
// server, what it said).
func describe(err error) string {
	var knitErr *resolver.Error
	if resolver.ErrorCode(err) == resolver.EInternal || !errors.As(err, &knitErr) {
		return err.Error()
	}
	return resolver.ErrorMessage(err)
}

// runConfigCheck loads a configuration file as knit serve would and reports
// every problem, or that it is fine.
func runConfigCheck(args []string, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, "Usage:\n  knit config check FILE   check FILE as knit serve "+
			"would load it: identity rules and audiences, every problem named by key")
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errUsage
	}
	cfg, err := loadSettings(args[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is fine: %d audiences (%s)\n", args[1], len(cfg.Audiences),
		audienceNames(cfg))
	return nil
}

func audienceNames(cfg settings) string {
	names := make([]string, len(cfg.Audiences))
	for i, d := range cfg.Audiences {
		names[i] = d.Name
	}
	return strings.Join(names, ", ")
}
