package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/knit-cdp/knit/resolver"
)

const identityUsage = `Usage:
  knit identity unlink [flags] TYPE:VALUE   block an identifier for good and
                                            rebuild the profile that held it
  knit profiles delete [flags] TYPE:VALUE   erase a person for a privacy request
`

func runIdentity(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
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
		result, err := a.store.Unlink(ctx, id, *reason)
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
		result, err := a.store.Delete(ctx, id, "cli")
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
