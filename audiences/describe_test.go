package audiences

import (
	"strings"
	"testing"
)

func TestSummaryReadsTheConditionInPlainEnglish(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"performed with a count and a window", `
condition:
  performed: {event: Order Completed, at_least: 2, within: 90d}`,
			"People who performed Order Completed at least 2 times within 90 days."},
		{"at least once goes without saying", `
condition: {performed: {event: Signed Up, at_least: 1}}`,
			"People who performed Signed Up."},
		{"exactly and a filter", `
condition:
  performed:
    event: Order Completed
    where: [{property: total, greater_than: 100}, {property: currency, equals: USD}]
    exactly: 1
    between: [1h, 30d]`,
			`People who performed Order Completed where total is more than 100 and ` +
				`currency equals "USD" exactly once between 30 days and 1 hour ago.`},
		{"never", `
require_email: true
condition: {not_performed: {event: Order Completed}}`,
			"People with an email who never performed Order Completed."},
		{"not within", `
condition: {not_performed: {event: App Opened, within: 36h}}`,
			"People who did not perform App Opened within 1 day 12 hours."},
		{"and with a nested or", `
include_anonymous: true
condition:
  and:
    - in_audience: vip
    - or:
        - trait: {key: plan, one_of: [pro, team]}
        - trait: {key: email, exists: false}`,
			`Anyone, anonymous visitors too, who are in the vip audience and (have a ` +
				`plan trait that is one of "pro", "team" or have no email trait).`},
		{"not", `
condition:
  not: {performed: {event: Product Viewed, where: [{property: name, contains: "50%"}]}}`,
			`People who do not match (performed Product Viewed where name contains "50%").`},
		{"count aggregate", `
condition:
  aggregate: {event: Order Completed, function: count, at_least: 3, less_than: 10,
    within: 1h30m}`,
			"People who have at least 3 and less than 10 Order Completed events " +
				"within 1 hour 30 minutes."},
		{"average aggregate", `
condition:
  aggregate: {event: Order Completed, function: avg, property: total, at_most: 20.5}`,
			"People who have an average total of at most 20.5 across Order Completed."},
		{"sequence with a follow-up window", `
condition:
  then_not:
    first: {event: Trial Started}
    not_followed_by: [{event: Subscribed}]
    within: 14d`,
			"People who performed Trial Started and did not follow it with Subscribed " +
				"within 14 days after it."},
		{"long lists are cut short", `
condition: {trait: {key: tier, one_of: [1, 2, 3, 4, 5, 6, 7]}}`,
			"People who have a tier trait that is one of 1, 2, 3, 4, 5, 2 more."},
		{"trait starts with, ignoring case", `
condition: {trait: {key: city, starts_with: san, ignore_case: true}}`,
			`People who have a city trait that starts with "san" (ignoring case).`},
		{"no condition", `name: empty`, "No condition is set."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustDefinition(t, tc.yaml).Summary(); got != tc.want {
				t.Errorf("Summary() =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestSummaryOfTheBuiltins(t *testing.T) {
	want := map[string]string{
		"cart_abandonment": "People with an email who performed Product Added between " +
			"7 days and 1 hour ago and did not follow it with Order Completed or " +
			"Product Removed for the same product_id.",
		"shoe_reorder": "People with an email who have a total distance (converting " +
			"values in km, per distance_unit) of at least 300 across Workout Completed " +
			"where distance is at least 0 since their latest Order Completed where " +
			`products[].category equals "Shoes" (ignoring case).`,
	}
	for name, text := range want {
		if got := builtin(t, name).Summary(); got != text {
			t.Errorf("%s: Summary() =\n%s\nwant\n%s", name, got, text)
		}
	}
}

func TestScheduleSummary(t *testing.T) {
	cases := []struct {
		schedule, timezone, want, zone string
	}{
		{"", "", "every 15 minutes", "UTC"},
		{"* * * * *", "", "every minute", "UTC"},
		{"*/5 * * * *", "Europe/Paris", "every 5 minutes", "Europe/Paris"},
		{"5 * * * *", "", "every hour at :05", "UTC"},
		{"30 */6 * * *", "", "every 6 hours at :30", "UTC"},
		{"0 9 * * *", "Europe/Paris", "every day at 09:00 (Europe/Paris)", "Europe/Paris"},
		{"CRON_TZ=America/New_York 30 7 * * 1-5", "",
			"every weekday at 07:30 (America/New_York)", "America/New_York"},
		{"0 6 * * 1", "", "every Monday at 06:00 (UTC)", "UTC"},
		{"0 6 * * 7", "", "every Sunday at 06:00 (UTC)", "UTC"},
		{"15 0 1 * *", "", "on day 1 of every month at 00:15 (UTC)", "UTC"},
		{"@daily", "Asia/Tokyo", "every day at 00:00 (Asia/Tokyo)", "Asia/Tokyo"},
		{"@hourly", "", "every hour, on the hour", "UTC"},
		{"@every 2h", "", "every 2h", "UTC"},
		{"5 4 1,15 * *", "", "on the cron schedule 5 4 1,15 * *", "UTC"},
		{"0 9 * 1 *", "", "on the cron schedule 0 9 * 1 *", "UTC"},
	}
	for _, tc := range cases {
		def := Definition{Name: "t", Schedule: tc.schedule, Timezone: tc.timezone}
		if got := def.ScheduleSummary(); got != tc.want {
			t.Errorf("schedule %q in %q reads %q, want %q", tc.schedule, tc.timezone,
				got, tc.want)
		}
		if got := def.TimeZone(); got != tc.zone {
			t.Errorf("schedule %q in %q: TimeZone() = %q, want %q", tc.schedule,
				tc.timezone, got, tc.zone)
		}
	}
}

func TestDisplayYAMLShowsWhatIsSetAndHidesSecrets(t *testing.T) {
	def := mustDefinition(t, `
name: vip
schedule: "0 9 * * *"
timezone: Europe/Paris
destinations:
  - url: https://hooks.example/in?token=abc123
    secret: s3cr3t
    write_key: wk-999
  - url: https://user:pa55@hooks.example/other
condition:
  and:
    - performed: {event: Order Completed, between: [7d, 90m], at_least: 0}
    - trait: {key: plan, equals: false}
  `)
	got, err := def.DisplayYAML()
	if err != nil {
		t.Fatal(err)
	}
	want := `name: vip
schedule: 0 9 * * *
timezone: Europe/Paris
destinations:
  - url: https://hooks.example/in?hidden
    secret: (hidden)
    write_key: (hidden)
  - url: https://hidden@hooks.example/other
condition:
  and:
    - performed:
        event: Order Completed
        between: [7d, 1h30m]
        at_least: 0
    - trait:
        key: plan
        equals: false
`
	if got != want {
		t.Errorf("DisplayYAML() =\n%s\nwant\n%s", got, want)
	}
	for _, secret := range []string{"abc123", "s3cr3t", "wk-999", "pa55"} {
		if strings.Contains(got, secret) {
			t.Errorf("DisplayYAML() shows the secret %q", secret)
		}
	}
	if def.Destinations[0].Secret != "s3cr3t" {
		t.Errorf("DisplayYAML changed the definition: %+v", def.Destinations[0])
	}
}

func TestDisplayYAMLReadsBackAsTheSameDefinition(t *testing.T) {
	for _, def := range Builtins() {
		text, err := def.DisplayYAML()
		if err != nil {
			t.Fatal(err)
		}
		again := mustDefinition(t, text)
		before, _ := def.DisplayYAML()
		after, _ := again.DisplayYAML()
		if before != after || again.Summary() != def.Summary() {
			t.Errorf("%s does not read back the same:\n%s\nthen\n%s", def.Name, before, after)
		}
	}
}
