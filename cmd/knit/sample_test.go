package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

const sampleDir = "../../testdata/sample"

// sampleExpected is the part of the sample's expected.json about audiences.
type sampleExpected struct {
	AsOf            string              `json:"as_of"`
	CartAbandonment map[string][]string `json:"cart_abandonment"`
	ShoeReorder     map[string]float64  `json:"shoe_reorder"`
	Ambiguous       []string            `json:"shoe_reorder_ambiguous"`
	Profiles        int                 `json:"profiles"`
	Identified      int                 `json:"identified_profiles"`
}

// mustRun runs a knit command line in-process and returns its stdout.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		if k == "KNIT_LOG_LEVEL" {
			return "warn"
		}
		return ""
	}
	if err := run(context.Background(), args, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("knit %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func TestSampleImportGivesExpectedAudiences(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(sampleDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want sampleExpected
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}

	db := sqltest.MustDSN(t, "sample.db")
	summary := mustRun(t, "import", "--db", db, filepath.Join(sampleDir, "events.ndjson"))
	if !strings.HasPrefix(summary, "read 6188, stored 6188, duplicates 0, rejected 0") {
		t.Errorf("import summary %q", summary)
	}
	mustRun(t, "audiences", "run", "--db", db, "--clock", want.AsOf)

	checkSampleCart(t, db, want)
	checkSampleReorder(t, db, want)
	checkSampleProfileCounts(t, db, want)
}

// exportedMembers runs `knit audiences export NAME --format json`.
func exportedMembers(t *testing.T, db, name string) []apiMember {
	t.Helper()
	out := mustRun(t, "audiences", "export", name, "--db", db, "--format", "json")
	var export struct {
		Size    int         `json:"size"`
		Members []apiMember `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &export); err != nil {
		t.Fatalf("export %s: %v", name, err)
	}
	if export.Size != len(export.Members) {
		t.Errorf("export %s: size %d but %d members", name, export.Size, len(export.Members))
	}
	return export.Members
}

func checkSampleCart(t *testing.T, db string, want sampleExpected) {
	t.Helper()
	got := map[string][]string{}
	for _, m := range exportedMembers(t, db, "cart_abandonment") {
		for _, p := range m.Attributes["abandoned_products"].([]any) {
			got[m.UserID] = append(got[m.UserID], p.(string))
		}
	}
	for user, products := range want.CartAbandonment {
		if strings.Join(got[user], ",") != strings.Join(products, ",") {
			t.Errorf("cart_abandonment %s: got %v, want %v", user, got[user], products)
		}
	}
	for user := range got {
		if _, ok := want.CartAbandonment[user]; !ok {
			t.Errorf("cart_abandonment: unexpected member %s %v", user, got[user])
		}
	}
}

func checkSampleReorder(t *testing.T, db string, want sampleExpected) {
	t.Helper()
	skip := map[string]bool{}
	for _, user := range want.Ambiguous {
		skip[user] = true
	}
	got := map[string]float64{}
	for _, m := range exportedMembers(t, db, "shoe_reorder") {
		miles, _ := m.Attributes["miles_since_purchase"].(float64)
		got[m.UserID] = miles
	}

	users := map[string]bool{}
	for user := range want.ShoeReorder {
		users[user] = true
	}
	for user := range got {
		users[user] = true
	}
	for user := range users {
		if skip[user] {
			continue
		}
		wantMiles, wanted := want.ShoeReorder[user]
		gotMiles, found := got[user]
		if wanted != found || math.Abs(gotMiles-wantMiles) > 0.051 {
			t.Errorf("shoe_reorder %s: got %v (member %v), want %v (member %v)",
				user, gotMiles, found, wantMiles, wanted)
		}
	}
}

func checkSampleProfileCounts(t *testing.T, dbPath string, want sampleExpected) {
	t.Helper()
	db := mustOpenReadOnly(t, dbPath)
	var profiles, identified int
	mustScan(t, db, `SELECT COUNT(*) FROM profiles WHERE merged_into IS NULL`, &profiles)
	mustScan(t, db, `SELECT COUNT(DISTINCT profile_id) FROM identities
		WHERE type = 'user_id'`, &identified)
	if profiles != want.Profiles || identified != want.Identified {
		t.Errorf("%d profiles, %d identified; want %d, %d",
			profiles, identified, want.Profiles, want.Identified)
	}
}
