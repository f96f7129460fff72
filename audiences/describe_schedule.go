package audiences

import (
	"strconv"
	"strings"
)

// TimeZone names the IANA zone the audience's schedule reads in: its
// timezone, else the CRON_TZ= (or TZ=) that starts its schedule, else UTC.
func (d Definition) TimeZone() string {
	if d.Timezone != "" {
		return d.Timezone
	}
	zone, _ := splitZone(strings.TrimSpace(d.Schedule))
	if zone == "" {
		return "UTC"
	}
	return zone
}

// splitZone parts a schedule into the zone its CRON_TZ= or TZ= prefix
// names ("" for none) and the rest.
func splitZone(spec string) (zone, rest string) {
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if after, ok := strings.CutPrefix(spec, prefix); ok {
			zone, rest, _ = strings.Cut(after, " ")
			return zone, strings.TrimSpace(rest)
		}
	}
	return "", spec
}

// ScheduleSummary says in plain English when the audience is computed,
// such as "every 15 minutes" or "every day at 09:00 (Europe/Paris)".
// Schedules it has no words for read "on the cron schedule 5 4 1,15 * *".
func (d Definition) ScheduleSummary() string {
	_, spec := splitZone(d.scheduleSpec())
	text, timed := sayCron(spec)
	if timed {
		text += " (" + d.TimeZone() + ")"
	}
	return text
}

// sayCron reads a standard cron spec; timed tells whether the words name
// a time of day, which depends on the zone.
func sayCron(spec string) (text string, timed bool) {
	switch spec {
	case "@hourly":
		return "every hour, on the hour", false
	case "@daily", "@midnight":
		return "every day at 00:00", true
	case "@weekly":
		return "every Sunday at 00:00", true
	case "@monthly":
		return "on the 1st of every month at 00:00", true
	}
	if every, ok := strings.CutPrefix(spec, "@every "); ok {
		return "every " + every, false
	}
	fields := strings.Fields(spec)
	if len(fields) != 5 || fields[3] != "*" {
		return "on the cron schedule " + spec, false
	}
	if text, ok := sayMinutes(fields); ok {
		return text, false
	}
	if text, ok := sayDays(fields); ok {
		return text, true
	}
	return "on the cron schedule " + spec, false
}

// sayMinutes reads schedules that repeat within each day: "every 15
// minutes", "every hour at :05", "every 2 hours at :00".
func sayMinutes(f []string) (string, bool) {
	if f[2] != "*" || f[4] != "*" {
		return "", false
	}
	minute, hour := f[0], f[1]
	if hour == "*" {
		if step, ok := cronStep(minute); ok {
			return sayEvery(step, "minute"), true
		}
		if m, ok := cronNumber(minute, 59); ok {
			return "every hour at :" + twoDigits(m), true
		}
		return "", false
	}
	step, stepOK := cronStep(hour)
	m, minuteOK := cronNumber(minute, 59)
	if stepOK && minuteOK {
		return sayEvery(step, "hour") + " at :" + twoDigits(m), true
	}
	return "", false
}

// sayDays reads schedules that run at one time of day: "every day at
// 09:30", "every weekday at 08:00", "every Monday at 06:00", "on day 1 of
// every month at 00:00".
func sayDays(f []string) (string, bool) {
	m, minuteOK := cronNumber(f[0], 59)
	h, hourOK := cronNumber(f[1], 23)
	if !minuteOK || !hourOK {
		return "", false
	}
	at := " at " + twoDigits(h) + ":" + twoDigits(m)
	day, weekday := f[2], f[4]
	switch {
	case day == "*" && weekday == "*":
		return "every day" + at, true
	case day == "*" && weekday == "1-5":
		return "every weekday" + at, true
	case day == "*":
		if n, ok := cronNumber(weekday, 7); ok {
			return "every " + weekdays[n%7] + at, true
		}
	case weekday == "*":
		if n, ok := cronNumber(day, 31); ok && n > 0 {
			return "on day " + strconv.Itoa(n) + " of every month" + at, true
		}
	}
	return "", false
}

var weekdays = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday",
	"Friday", "Saturday"}

// cronStep reads "*/n" (or "*" as a step of 1).
func cronStep(field string) (int, bool) {
	if field == "*" {
		return 1, true
	}
	text, ok := strings.CutPrefix(field, "*/")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(text)
	return n, err == nil && n > 0
}

// cronNumber reads a lone number from 0 to most.
func cronNumber(field string, most int) (int, bool) {
	n, err := strconv.Atoi(field)
	return n, err == nil && n >= 0 && n <= most
}

func sayEvery(n int, unit string) string {
	if n == 1 {
		return "every " + unit
	}
	return "every " + strconv.Itoa(n) + " " + unit + "s"
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
