package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/knit-cdp/knit/resolver"
)

const identityUsage = `Usage:
  knit identity preview --config NEW.yaml   what the identity rules of NEW.yaml
                                            would change, changing nothing
  knit identity unlink [flags] TYPE:VALUE   block an identifier for good and
                                            rebuild the profile that held it
  knit profiles delete [flags] TYPE:VALUE   erase a person for a privacy request
`

func runIdentity(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "preview" {
		return runPreview(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) == 0 || args[0] != "unlink" {
		fmt.Fprint(stderr, identityUsage)
		return errUsage
	}
	fs := newFlagSet("knit identity unlink", "knit identity unlink [flags] TYPE:VALUE: "+
		"block the identifier for good, rebuild the profile that held it (and every "+
		"profile merged into it) from its stored messages, and record the split. "+
		"Audiences pick the change up on their next run.", stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	reason := fs.String("reason", "", "why, kept in the profile's history")
	id, err := parseIdentifierArg(fs, args[1:])
	if err != nil {
		return err
	}

	return withStore(ctx, flags, getenv, stderr, func(a *app) error {
		result, err := a.store.Unlink(cliActor(ctx), id, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "unlinked %s: profile %d re-made as %v from %d messages\n",
			id, result.Profile, result.Profiles, result.Events)
		return nil
	})
}

func runProfiles(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "delete" {
		fmt.Fprint(stderr, identityUsage)
		return errUsage
	}
	fs := newFlagSet("knit profiles delete", "knit profiles delete [flags] TYPE:VALUE: "+
		"erase the person holding the identifier: identifiers, traits, events, history "+
		"and audience memberships. The deletion is recorded with counts only.", stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	id, err := parseIdentifierArg(fs, args[1:])
	if err != nil {
		return err
	}

	return withStore(ctx, flags, getenv, stderr, func(a *app) error {
		result, err := a.store.Delete(cliActor(ctx), id, "cli")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted profile %d: %d events, %d identifiers\n",
			result.Profile, result.Events, result.Identifiers)
		return nil
	})
}

// parseIdentifierArg parses flags and the one TYPE:VALUE argument.
func parseIdentifierArg(fs *flag.FlagSet, args []string) (resolver.Identifier, error) {
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return resolver.Identifier{}, err
	}
	if len(positional) != 1 {
		return resolver.Identifier{}, fmt.Errorf("%w: give one TYPE:VALUE", errUsage)
	}
	kind, value, ok := strings.Cut(positional[0], ":")
	if !ok || kind == "" || value == "" {
		return resolver.Identifier{}, fmt.Errorf("%w: %q is not TYPE:VALUE, such as "+
			"email:jane@example.com", errUsage, positional[0])
	}
	return resolver.NormaliseIdentifier(kind, value), nil
}

// withStore opens the existing database and runs fn.
func withStore(ctx context.Context, flags commonFlags, getenv env, stderr io.Writer,
	fn func(*app) error) error {
	flags.mustExist = true
	a, err := openApp(ctx, flags, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.db.Close()
	return fn(a)
}

func runPreview(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlagSet("knit identity preview", "knit identity preview --config NEW.yaml "+
		"[flags]: replay every stored message under the identity rules of NEW.yaml in a "+
		"scratch database and report how many profiles would merge or split, with "+
		"examples. The database in --db is only read.", stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	var positional []string
	if err := parseFlags(fs, args, &positional); err != nil {
		return err
	}
	if flags.config == "" || len(positional) > 0 {
		return fmt.Errorf("%w: knit identity preview needs --config NEW.yaml and no "+
			"arguments", errUsage)
	}

	return withStore(ctx, flags, getenv, stderr, func(a *app) error {
		scratchDir, err := os.MkdirTemp("", "knit-preview-")
		if err != nil {
			return fmt.Errorf("make scratch folder: %w", err)
		}
		defer os.RemoveAll(scratchDir)
		quiet := slog.New(slog.DiscardHandler)
		scratch, err := openDB(ctx, filepath.Join(scratchDir, "preview.db"), quiet)
		if err != nil {
			return err
		}
		defer scratch.Close()

		report, err := resolver.Preview(ctx, a.db, scratch, a.settings.Rules, a.now)
		if err != nil {
			return err
		}
		printPreview(stdout, report)
		return nil
	})
}

func printPreview(w io.Writer, r resolver.PreviewReport) {
	fmt.Fprintf(w, "replayed %d messages: %d profiles now, %d under the new rules\n",
		r.Messages, r.ProfilesNow, r.ProfilesProposed)
	fmt.Fprintf(w, "%d profiles would form by merging profiles of today, "+
		"%d of today's profiles would split\n", r.Merges, r.Splits)
	fmt.Fprintf(w, "%d identifiers would be dropped, %d added\n", r.Dropped, r.Added)
	for _, example := range r.MergeExamples {
		fmt.Fprintf(w, "  merge: %s\n", example)
	}
	for _, example := range r.SplitExamples {
		fmt.Fprintf(w, "  split: %s\n", example)
	}
	for _, example := range r.DroppedExamples {
		fmt.Fprintf(w, "  dropped: %s\n", example)
	}
	for _, example := range r.AddedExamples {
		fmt.Fprintf(w, "  added: %s\n", example)
	}
}

// cliActor marks ctx as the command line's, for the audit log of the
// changes made under it.
func cliActor(ctx context.Context) context.Context {
	return resolver.WithActor(ctx, resolver.Actor{Name: "cli"})
}
