package main

import (
	"context"
	"fmt"
	"io"

	"github.com/knit-cdp/knit/web"
)

const tokenSummary = `knit token reset [flags]: make a new API token for the APIs and the
console, replacing the one knit generated (for example when it was lost),
sign every console session out, and print the new token once. A server
started with KNIT_API_TOKEN keeps accepting that token and not the new one:
to change such a token, change the variable and restart knit.`

func runToken(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "reset" {
		fmt.Fprintf(stderr, "Usage:\n  %s\n", tokenSummary)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return errUsage
	}

	fs := newFlagSet("knit token reset", tokenSummary, stderr)
	var flags commonFlags
	flags.register(fs, getenv)
	var positional []string
	if err := parseFlags(fs, args[1:], &positional); err != nil {
		return err
	}
	if len(positional) > 0 {
		return fmt.Errorf("%w: knit token reset takes no arguments", errUsage)
	}

	flags.mustExist = true // a typo in --db must not reset nothing
	a, err := openApp(ctx, flags, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.db.Close()

	token, err := web.ResetToken(cliActor(ctx), a.db)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "knit: new API token (shown once; keep it): %s\n", token)
	fmt.Fprintln(stderr, "knit: a server started with KNIT_API_TOKEN keeps that token "+
		"instead; change the variable and restart it")
	return nil
}
