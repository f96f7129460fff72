package web

// The person page's timeline: a person's events by day, each with the
// few properties that tell its story, written for people.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/knit-cdp/knit/resolver"
)

// timelineView is one page of a person's events, newest first, by day.
type timelineView struct {
	Days  []dayView
	Shown int
	Paged bool   // the page starts below the newest event
	Older string // the cursor of the next, older page; "" on the last
}

// dayView is the events of one day, UTC.
type dayView struct {
	Date   string // 2026-11-27
	Label  string // Friday 27 November 2026
	Events []eventView
}

// eventView is one event as the timeline shows it.
type eventView struct {
	At    time.Time
	Clock string // 21:00
	Name  string
	Place placeView
	Props []propView
}

// propView is one key property of an event, written for people.
type propView struct{ Label, Value string }

func (c *console) timeline(ctx context.Context, profile int64, before *resolver.EventPosition,
	apps appPalette) (timelineView, error) {
	page, err := c.server.profiles.Timeline(ctx, profile, before, timelinePageSize)
	if err != nil {
		return timelineView{}, err
	}
	view := timelineView{Shown: len(page.Events), Paged: before != nil}
	for _, e := range page.Events {
		ev := eventView{At: e.Timestamp(), Clock: e.Timestamp().Format("15:04"),
			Name: timelineEventName(e.EventRecord), Props: keyProperties(e.EventRecord),
			Place: apps.place(e.App, e.DeviceType+" "+e.DeviceID)}
		date := ev.At.Format(time.DateOnly)
		if n := len(view.Days); n == 0 || view.Days[n-1].Date != date {
			view.Days = append(view.Days, dayView{Date: date,
				Label: ev.At.Format("Monday 2 January 2006")})
		}
		day := &view.Days[len(view.Days)-1]
		day.Events = append(day.Events, ev)
	}
	if page.Older != nil {
		view.Older = encodePosition(*page.Older)
	}
	return view, nil
}

// timelineEventName is what the timeline calls an event: a track call's name, or
// the kind of call with the page or screen name.
func timelineEventName(e resolver.EventRecord) string {
	switch e.Type {
	case "track":
		return e.Event
	case "page", "screen":
		kind := strings.ToUpper(e.Type[:1]) + e.Type[1:]
		if e.Event == "" {
			return kind + " viewed"
		}
		return kind + ": " + e.Event
	case "identify":
		return "Identified"
	case "group":
		return "Joined a group"
	case "alias":
		return "Alias"
	}
	return e.Type
}

// maxKeyProperties is how many properties an event shows at most.
const maxKeyProperties = 4

// keyProperties picks the properties that tell an event's story: the
// product, the money, the distance and the time it took, and who signed in
// on an identify call.
func keyProperties(e resolver.EventRecord) []propView {
	props := decodePropsJSON(e.Properties)
	var out []propView
	add := func(label, value string) {
		if value != "" {
			out = append(out, propView{Label: label, Value: value})
		}
	}
	cur := eventCurrency(props)
	add("Product", productText(props))
	revenue := moneyText(firstPresent(props, "revenue", "total"), cur)
	add("Revenue", revenue)
	if revenue == "" {
		add("Price", moneyText(props["price"], cur))
	}
	add("Distance", distanceText(props))
	add("Duration", durationText(props["duration_s"]))
	if e.Type == "identify" {
		add("User id", e.UserID)
	}
	return out[:min(len(out), maxKeyProperties)]
}

// decodePropsJSON reads a JSON object with numbers as written; anything else
// reads as empty.
func decodePropsJSON(text string) map[string]any {
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if dec.Decode(&out) != nil {
		return nil
	}
	return out
}

func firstPresent(props map[string]any, keys ...string) any {
	for _, k := range keys {
		if v, ok := props[k]; ok && v != nil {
			return v
		}
	}
	return nil
}

// maxProductsNamed is how many products of an order an event names.
const maxProductsNamed = 3

// productText names the event's product, or the products of an order.
func productText(props map[string]any) string {
	if list, ok := props["products"].([]any); ok {
		var names []string
		for _, item := range list {
			if name := productLabel(propsObject(item)); name != "" {
				names = append(names, name)
			}
		}
		if len(names) > maxProductsNamed {
			more := len(names) - maxProductsNamed
			return strings.Join(names[:maxProductsNamed], ", ") + " and " +
				countNoun(more, "more", "more")
		}
		return strings.Join(names, ", ")
	}
	if _, ok := props["product_id"]; ok {
		return productLabel(props)
	}
	return ""
}

func productLabel(product map[string]any) string {
	if name := propText(product["name"]); name != "" {
		return name
	}
	return propText(product["product_id"])
}

func propsObject(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// propText writes a string, number or boolean; "" for anything else.
func propText(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return numberText(x)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// eventCurrency is the event's currency code, USD when it names none, as in
// Segment's e-commerce spec.
func eventCurrency(props map[string]any) string {
	if code := strings.ToUpper(propText(props["currency"])); code != "" {
		return code
	}
	return "USD"
}

// moneyText writes an amount with its currency: "$1,250.00", "12.50 CHF".
func moneyText(v any, code string) string {
	n, ok := v.(json.Number)
	if !ok {
		return ""
	}
	amount, err := n.Float64()
	if err != nil {
		return ""
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	text := groupedDecimal(strconv.FormatFloat(amount, 'f', 2, 64))
	symbols := map[string]string{"USD": "$", "EUR": "€", "GBP": "£"}
	if symbol, ok := symbols[code]; ok {
		return sign + symbol + text
	}
	return sign + text + " " + code
}

// numberText writes a number for people: digits grouped, at most two
// decimals.
func numberText(n json.Number) string {
	if i, err := n.Int64(); err == nil {
		return groupDigits(i)
	}
	f, err := n.Float64()
	if err != nil {
		return n.String()
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	rounded := strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
	return sign + groupedDecimal(rounded)
}

// groupedDecimal groups the whole part of a non-negative decimal text.
func groupedDecimal(text string) string {
	whole, fraction, hasFraction := strings.Cut(text, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return text
	}
	if hasFraction {
		return groupDigits(n) + "." + fraction
	}
	return groupDigits(n)
}

// distanceText writes a workout's distance with its unit when it names one.
func distanceText(props map[string]any) string {
	n, ok := props["distance"].(json.Number)
	if !ok {
		return ""
	}
	unit := propText(props["distance_unit"])
	return strings.TrimSpace(numberText(n) + " " + unit)
}

// durationText writes a number of seconds as hours and minutes.
func durationText(v any) string {
	n, ok := v.(json.Number)
	if !ok {
		return ""
	}
	seconds, err := n.Float64()
	if err != nil || seconds < 0 {
		return ""
	}
	d := time.Duration(seconds) * time.Second
	hours, minutes := int(d/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case hours > 0 && minutes > 0:
		return fmt.Sprintf("%d h %d min", hours, minutes)
	case hours > 0:
		return fmt.Sprintf("%d h", hours)
	case minutes > 0:
		return fmt.Sprintf("%d min", minutes)
	}
	return fmt.Sprintf("%d s", int(seconds))
}
