package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/knit-cdp/knit/audiences"
)

const audiencesUsage = `Usage:
  knit audiences preview [flags] FILE NAME  compute NAME as defined in FILE now,
                                            print its size and a sample, save nothing
  knit audiences run [flags] [NAME]      compute NAME, or every audience, now
  knit audiences export [flags] NAME     write NAME's current members to stdout
`

func runAudiences(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, audiencesUsage)
		return errUsage
	}
	switch args[0] {
	case "run":
		return runAudiencesRun(ctx, args[1:], getenv, stdout, stderr)
	case "export":
		return runAudiencesExport(ctx, args[1:], getenv, stdout, stderr)
	case "preview":
		return runAudiencesPreview(ctx, args[1:], getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, audiencesUsage)
		return nil
	}
	fmt.Fprintf(stderr, "knit audiences: unknown command %q\n\n%s", args[0], audiencesUsage)
	return errUsage
}

func runAudiencesRun(ctx context.Context, args []string, getenv env,
	stdout, stderr io.Writer) error {
	fs := newFlagSet("knit audiences run", "knit audiences run [flags] [NAME]: compute "+
		"NAME (or every audience) now, replace its result and print a summary.", stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return err
	}

	flags.mustExist = true
	a, err := openApp(ctx, flags, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.db.Close()

	names := positional
	if len(names) == 0 {
		names = a.runner.RunOrder()
	}
	var failed error
	for _, name := range names {
		run, err := a.runner.Run(cliActor(ctx), name)
		if err != nil {
			failed = errors.Join(failed, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: %s (%d entered, %d exited), evaluated at %s in %s\n",
			run.Audience, countOf(run.Size, "member"), run.Entered, run.Exited,
			audiences.FormatTime(run.EvaluatedAt),
			run.FinishedAt.Sub(run.StartedAt).Round(time.Millisecond))
	}
	return failed
}

func runAudiencesExport(ctx context.Context, args []string, getenv env,
	stdout, stderr io.Writer) error {
	fs := newFlagSet("knit audiences export", "knit audiences export [flags] NAME: "+
		"write NAME's current members to stdout as CSV or JSON.", stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	format := fs.String("format", "csv", "csv or json")
	layout := fs.String("layout", "", "CSV layout: default, columns (one column per "+
		"identifier, repeats as email_1) or json (identifiers and traits as JSON)")
	columns := fs.String("columns", "", "CSV: keep only these comma-separated columns")
	bom := fs.Bool("bom", false, "CSV: start with a UTF-8 byte-order mark, for Excel")
	hashEmail := fs.Bool("hash-email", false, "CSV: write emails as hex SHA-256, for ad platforms")
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return err
	}
	if len(positional) != 1 {
		return fmt.Errorf("%w: knit audiences export takes one audience name", errUsage)
	}
	if *format != "csv" && *format != "json" {
		return fmt.Errorf("%w: --format must be csv or json, not %q", errUsage, *format)
	}
	if *format == "json" && (*hashEmail || *bom || *layout != "" || *columns != "") {
		return fmt.Errorf("%w: --layout, --columns, --bom and --hash-email apply to "+
			"--format csv only", errUsage)
	}

	flags.mustExist = true
	a, err := openApp(ctx, flags, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.db.Close()

	name := positional[0]
	if *format == "csv" {
		return a.runner.WriteCSVWith(ctx, stdout, name, audiences.CSVOptions{
			Layout: *layout, Columns: splitList(*columns), BOM: *bom, HashEmail: *hashEmail,
		})
	}
	return writeJSONExport(ctx, a.runner, stdout, name)
}

// writeJSONExport streams the audience as the export API's JSON shape
// without paging, one member at a time.
func writeJSONExport(ctx context.Context, runner *audiences.Runner, w io.Writer,
	name string) error {
	run, err := runner.CurrentRun(ctx, name)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(w)
	head, _ := json.Marshal(map[string]any{
		"name": name, "computed_at": audiences.FormatTime(run.EvaluatedAt), "size": run.Size,
	})
	fmt.Fprintf(out, "%s,\"members\":[", head[:len(head)-1])

	first := true
	err = runner.EachMember(ctx, name, func(_ audiences.Run, m audiences.Member) error {
		if !first {
			out.WriteString(",")
		}
		first = false
		line, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode member %d: %w", m.ProfileID, err)
		}
		_, err = out.Write(line)
		return err
	})
	if err != nil {
		return err
	}
	out.WriteString("]}\n")
	return out.Flush()
}

func runAudiencesPreview(ctx context.Context, args []string, getenv env,
	stdout, stderr io.Writer) error {
	fs := newFlagSet("knit audiences preview", "knit audiences preview [flags] FILE NAME: "+
		"compute audience NAME as the config FILE defines it, over the database in --db, "+
		"and print its size and a sample of members. Nothing is saved.", stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	sample := fs.Int("sample", 10, "how many members to show")
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return err
	}
	if len(positional) != 2 {
		return fmt.Errorf("%w: knit audiences preview takes FILE and NAME", errUsage)
	}
	if *sample < 0 {
		return fmt.Errorf("%w: --sample is %d; it counts members to show, 0 or more",
			errUsage, *sample)
	}
	flags.config = positional[0]

	return withStore(ctx, flags, getenv, stderr, func(a *app) error {
		size, members, err := a.runner.Preview(ctx, positional[1], *sample)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s\n", positional[1], countOf(size, "member"))
		for _, m := range members {
			attrs, _ := json.Marshal(m.Attributes)
			fmt.Fprintf(stdout, "  %d %s %s %s\n", m.ProfileID, m.Email, m.UserID, attrs)
		}
		return nil
	})
}

// countOf writes n with its noun: "1 member", "3 members".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
