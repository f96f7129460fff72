package audiences

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testNow is the fixed instant rule tests evaluate at.
func testNow() time.Time { return time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) }

// ago returns the instant d before testNow.
func ago(d time.Duration) time.Time { return testNow().Add(-d) }

const day = 24 * time.Hour

func added(at time.Time, product any) testEvent {
	return testEvent{Name: "Product Added", Time: at,
		Properties: map[string]any{"product_id": product}}
}

func removed(at time.Time, product string) testEvent {
	return testEvent{Name: "Product Removed", Time: at,
		Properties: map[string]any{"product_id": product}}
}

// ordered is an Order Completed event listing products, each a product id
// or a whole product object.
func ordered(at time.Time, products ...any) testEvent {
	list := make([]any, len(products))
	for i, p := range products {
		if id, ok := p.(string); ok {
			p = map[string]any{"product_id": id}
		}
		list[i] = p
	}
	return testEvent{Name: "Order Completed", Time: at,
		Properties: map[string]any{"products": list}}
}

func shoe(id string) map[string]any {
	return map[string]any{"product_id": id, "category": "Shoes"}
}

// workout is a Workout Completed event; a nil unit leaves the unit out.
func workout(at time.Time, distance, unit any) testEvent {
	props := map[string]any{"distance": distance}
	if unit != nil {
		props["distance_unit"] = unit
	}
	return testEvent{Name: "Workout Completed", Time: at, Properties: props}
}

func TestAbandonedCartEvaluate(t *testing.T) {
	tests := []struct {
		name    string
		history []testEvent
		want    map[string]any // nil: not a member
	}{
		{
			name:    "a product added two days ago and never bought is abandoned",
			history: []testEvent{added(ago(2*day), "p1")},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "abandoned products are sorted and added_at is the latest add",
			history: []testEvent{
				added(ago(3*day), "sku-b"), added(ago(2*day), "sku-c"),
				added(ago(50*time.Hour), "sku-a"),
			},
			want: map[string]any{
				"abandoned_products": []string{"sku-a", "sku-b", "sku-c"},
				"added_at":           ago(2 * day),
			},
		},
		{
			name:    "a numeric product id is read as its text",
			history: []testEvent{added(ago(2*day), json.Number("42"))},
			want: map[string]any{
				"abandoned_products": []string{"42"}, "added_at": ago(2 * day),
			},
		},
		{
			name:    "an add older than max_age is not a member",
			history: []testEvent{added(ago(8*day), "p1")},
		},
		{
			name:    "an add younger than min_age is not a member",
			history: []testEvent{added(ago(30*time.Minute), "p1")},
		},
		{
			name: "an order listing the product after the add settles it",
			history: []testEvent{
				added(ago(2*day), "p1"), ordered(ago(day), "p2", "p1"),
			},
		},
		{
			name: "an order listing the product at the time of the add settles it",
			history: []testEvent{
				added(ago(2*day), "p1"), ordered(ago(2*day), "p1"),
			},
		},
		{
			name: "an order before the add leaves the product abandoned",
			history: []testEvent{
				ordered(ago(3*day), "p1"), added(ago(2*day), "p1"),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "an order of another product does not settle the add",
			history: []testEvent{
				added(ago(2*day), "p1"), ordered(ago(day), "p2"),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "only the products an order lists are settled",
			history: []testEvent{
				added(ago(3*day), "p1"), added(ago(2*day), "p2"),
				ordered(ago(day), "p2"),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(3 * day),
			},
		},
		{
			name: "a removal after the add settles it",
			history: []testEvent{
				added(ago(2*day), "p1"), removed(ago(day), "p1"),
			},
		},
		{
			name: "a removal at the time of the add settles it",
			history: []testEvent{
				added(ago(2*day), "p1"), removed(ago(2*day), "p1"),
			},
		},
		{
			name: "a removal before the add leaves the product abandoned",
			history: []testEvent{
				removed(ago(3*day), "p1"), added(ago(2*day), "p1"),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "a re-add after an order is abandoned again",
			history: []testEvent{
				added(ago(5*day), "p1"), ordered(ago(4*day), "p1"),
				added(ago(2*day), "p1"),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "a re-add younger than min_age hides the older add",
			history: []testEvent{
				added(ago(2*day), "p1"), added(ago(10*time.Minute), "p1"),
			},
		},
		{
			name: "an order whose products lack product_id settles nothing",
			history: []testEvent{
				added(ago(2*day), "p1"),
				ordered(ago(day), map[string]any{"sku": "p1"}),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "other events are ignored",
			history: []testEvent{
				{Name: "Product Viewed", Time: ago(2 * day),
					Properties: map[string]any{"product_id": "p1"}},
			},
		},
		{
			name:    "an empty history is not a member",
			history: nil,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := evaluateOn(t, builtin(t, "cart_abandonment"), tt.history)
			if (got != nil) != (tt.want != nil) {
				t.Fatalf("member = %v (%v), want %v", got != nil, got, tt.want != nil)
			}
			if !reflect.DeepEqual(got, formatted(tt.want)) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestDistanceSincePurchaseEvaluate(t *testing.T) {
	bought := ago(30 * day)
	member := func(shoe string, at time.Time, miles float64) map[string]any {
		return map[string]any{"shoe": shoe, "purchased_at": at, "miles_since_purchase": miles}
	}

	tests := []struct {
		name    string
		history []testEvent
		want    map[string]any // nil: not a member
	}{
		{
			name: "exactly 300 miles since the shoe purchase is a member",
			history: []testEvent{
				ordered(bought, shoe("s1")),
				workout(ago(20*day), 100.0, "miles"),
				workout(ago(10*day), json.Number("200"), nil),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "just under 300 miles is not a member",
			history: []testEvent{
				ordered(bought, shoe("s1")),
				workout(ago(20*day), 299.9, nil),
			},
		},
		{
			name: "runs before the shoe purchase do not count",
			history: []testEvent{
				workout(ago(40*day), 500.0, nil),
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 100.0, nil),
			},
		},
		{
			name: "only runs after the latest shoe purchase count",
			history: []testEvent{
				ordered(ago(60*day), shoe("s1")),
				workout(ago(50*day), 250.0, nil),
				ordered(bought, shoe("s2")),
				workout(ago(10*day), 200.0, nil),
			},
		},
		{
			name: "the latest shoe purchase names the shoe and the date",
			history: []testEvent{
				ordered(ago(60*day), shoe("s1")),
				workout(ago(50*day), 250.0, nil),
				ordered(bought, shoe("s2")),
				workout(ago(10*day), 310.0, nil),
			},
			want: member("s2", bought, 310),
		},
		{
			name: "a later purchase without shoes does not restart the count",
			history: []testEvent{
				ordered(bought, shoe("s1")),
				workout(ago(20*day), 200.0, nil),
				ordered(ago(15*day), map[string]any{"product_id": "sock", "category": "Socks"}),
				workout(ago(10*day), 150.0, nil),
			},
			want: member("s1", bought, 350),
		},
		{
			name: "the shoe is found among other products of the order",
			history: []testEvent{
				ordered(bought, map[string]any{"product_id": "sock", "category": "Socks"},
					shoe("s1")),
				workout(ago(10*day), 300.0, nil),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "the category is matched whatever its case",
			history: []testEvent{
				ordered(bought, map[string]any{"product_id": "s1", "category": "sHOES"}),
				workout(ago(10*day), 300.0, nil),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "kilometres are converted to miles",
			history: []testEvent{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 500.0, "km"),
			},
			want: member("s1", bought, 310.7),
		},
		{
			name: "the km unit is recognised in any case and with spaces",
			history: []testEvent{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 250.0, "KM"),
				workout(ago(9*day), 250.0, " Km "),
			},
			want: member("s1", bought, 310.7),
		},
		{
			name: "400 km is under 300 miles",
			history: []testEvent{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 400.0, "km"),
			},
		},
		{
			name: "another unit is taken as miles",
			history: []testEvent{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 300.0, "meters"),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "negative distances are ignored",
			history: []testEvent{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 300.0, nil),
				workout(ago(9*day), -50.0, nil),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "only JSON numbers are distances: text and booleans are not",
			history: []testEvent{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), "150", nil),
				workout(ago(9*day), "far", nil),
				workout(ago(8*day), true, nil),
				workout(ago(7*day), json.Number("300"), nil),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "miles are rounded to one decimal",
			history: []testEvent{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 100.04, nil),
				workout(ago(9*day), 200.03, nil),
			},
			want: member("s1", bought, 300.1),
		},
		{
			name: "no shoe purchase means no member",
			history: []testEvent{
				ordered(bought, map[string]any{"product_id": "sock", "category": "Socks"}),
				workout(ago(10*day), 1000.0, nil),
			},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := evaluateOn(t, builtin(t, "shoe_reorder"), tt.history)
			if (got != nil) != (tt.want != nil) {
				t.Fatalf("member = %v (%v), want %v", got != nil, got, tt.want != nil)
			}
			if !reflect.DeepEqual(got, formatted(tt.want)) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    time.Duration
		wantErr bool
	}{
		{name: "minutes", text: "90m", want: 90 * time.Minute},
		{name: "hours", text: "1h", want: time.Hour},
		{name: "Go compound form", text: "1h30m", want: 90 * time.Minute},
		{name: "whole days", text: "7d", want: 7 * day},
		{name: "fractional days", text: "1.5d", want: 36 * time.Hour},
		{name: "spaces around", text: " 2d ", want: 2 * day},
		{name: "a bare number is rejected", text: "7", wantErr: true},
		{name: "an unknown unit is rejected", text: "7w", wantErr: true},
		{name: "days that are not a number are rejected", text: "xd", wantErr: true},
		{name: "d alone is rejected", text: "d", wantErr: true},
		{name: "empty text is rejected", text: "", wantErr: true},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDuration(tt.text)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tt.text, got)
				}
				if !strings.Contains(err.Error(), tt.text) {
					t.Errorf("error %q does not quote the input %q", err, tt.text)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDuration(%q): %v", tt.text, err)
			}
			if got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

// formatted is want as the database gives attributes back: times as UTC
// text with milliseconds.
func formatted(want map[string]any) map[string]any {
	if want == nil {
		return nil
	}
	out := map[string]any{}
	for k, v := range want {
		if at, ok := v.(time.Time); ok {
			v = FormatTime(at)
		}
		out[k] = v
	}
	return out
}
