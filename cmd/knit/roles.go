package main

import (
	"fmt"
	"sort"
	"strings"
)

// The roles a knit serve process can take; every process takes all three
// unless --roles names fewer.
const (
	roleIngest    = "ingest"    // the webhook and the tracking API
	roleWeb       = "web"       // the console, the export API and the Profile API
	roleScheduler = "scheduler" // audience schedules and outbox delivery
)

// roles is the set of roles one process takes.
type roles map[string]bool

// parseRoles reads a comma-separated list such as "ingest,web"; empty means
// every role.
func parseRoles(text string) (roles, error) {
	all := roles{roleIngest: true, roleWeb: true, roleScheduler: true}
	if strings.TrimSpace(text) == "" {
		return all, nil
	}
	chosen := roles{}
	for _, name := range strings.Split(text, ",") {
		name = strings.TrimSpace(strings.ToLower(name))
		if !all[name] {
			return nil, fmt.Errorf("%w: --roles: %q is not a role; choose from "+
				"ingest, web and scheduler", errUsage, name)
		}
		chosen[name] = true
	}
	return chosen, nil
}

// String lists the roles in a stable order, for logs.
func (r roles) String() string {
	names := make([]string, 0, len(r))
	for name := range r {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
