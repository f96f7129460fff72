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

// cartRule is the built-in cart_abandonment rule, spelled out.
func cartRule() *AbandonedCart {
	return &AbandonedCart{
		AddedEvent:     "Product Added",
		AddedProduct:   "product_id",
		OrderEvent:     "Order Completed",
		OrderProduct:   "products[].product_id",
		RemovedEvent:   "Product Removed",
		RemovedProduct: "product_id",
		MinAge:         Duration(time.Hour),
		MaxAge:         Duration(7 * day),
	}
}

// shoeRule is the built-in shoe_reorder rule, spelled out.
func shoeRule() *DistanceSincePurchase {
	return &DistanceSincePurchase{
		PurchaseEvent:    "Order Completed",
		Products:         "products[]",
		ProductID:        "product_id",
		CategoryField:    "category",
		Category:         "Shoes",
		ProductAttribute: "shoe",
		ActivityEvent:    "Workout Completed",
		Distance:         "distance",
		DistanceUnit:     "distance_unit",
		ThresholdMiles:   300,
	}
}

func added(at time.Time, product any) Event {
	return Event{Name: "Product Added", Time: at,
		Properties: map[string]any{"product_id": product}}
}

func removed(at time.Time, product string) Event {
	return Event{Name: "Product Removed", Time: at,
		Properties: map[string]any{"product_id": product}}
}

// ordered is an Order Completed event listing products, each a product id
// or a whole product object.
func ordered(at time.Time, products ...any) Event {
	list := make([]any, len(products))
	for i, p := range products {
		if id, ok := p.(string); ok {
			p = map[string]any{"product_id": id}
		}
		list[i] = p
	}
	return Event{Name: "Order Completed", Time: at,
		Properties: map[string]any{"products": list}}
}

func shoe(id string) map[string]any {
	return map[string]any{"product_id": id, "category": "Shoes"}
}

// workout is a Workout Completed event; a nil unit leaves the unit out.
func workout(at time.Time, distance, unit any) Event {
	props := map[string]any{"distance": distance}
	if unit != nil {
		props["distance_unit"] = unit
	}
	return Event{Name: "Workout Completed", Time: at, Properties: props}
}

func TestAbandonedCartEvaluate(t *testing.T) {
	tests := []struct {
		name    string
		history []Event
		want    map[string]any // nil: not a member
	}{
		{
			name:    "a product added two days ago and never bought is abandoned",
			history: []Event{added(ago(2*day), "p1")},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "abandoned products are sorted and added_at is the latest add",
			history: []Event{
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
			history: []Event{added(ago(2*day), json.Number("42"))},
			want: map[string]any{
				"abandoned_products": []string{"42"}, "added_at": ago(2 * day),
			},
		},
		{
			name:    "an add older than max_age is not a member",
			history: []Event{added(ago(8*day), "p1")},
		},
		{
			name:    "an add younger than min_age is not a member",
			history: []Event{added(ago(30*time.Minute), "p1")},
		},
		{
			name: "an order listing the product after the add settles it",
			history: []Event{
				added(ago(2*day), "p1"), ordered(ago(day), "p2", "p1"),
			},
		},
		{
			name: "an order listing the product at the time of the add settles it",
			history: []Event{
				added(ago(2*day), "p1"), ordered(ago(2*day), "p1"),
			},
		},
		{
			name: "an order before the add leaves the product abandoned",
			history: []Event{
				ordered(ago(3*day), "p1"), added(ago(2*day), "p1"),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "an order of another product does not settle the add",
			history: []Event{
				added(ago(2*day), "p1"), ordered(ago(day), "p2"),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "only the products an order lists are settled",
			history: []Event{
				added(ago(3*day), "p1"), added(ago(2*day), "p2"),
				ordered(ago(day), "p2"),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(3 * day),
			},
		},
		{
			name: "a removal after the add settles it",
			history: []Event{
				added(ago(2*day), "p1"), removed(ago(day), "p1"),
			},
		},
		{
			name: "a removal at the time of the add settles it",
			history: []Event{
				added(ago(2*day), "p1"), removed(ago(2*day), "p1"),
			},
		},
		{
			name: "a removal before the add leaves the product abandoned",
			history: []Event{
				removed(ago(3*day), "p1"), added(ago(2*day), "p1"),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "a re-add after an order is abandoned again",
			history: []Event{
				added(ago(5*day), "p1"), ordered(ago(4*day), "p1"),
				added(ago(2*day), "p1"),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "a re-add younger than min_age hides the older add",
			history: []Event{
				added(ago(2*day), "p1"), added(ago(10*time.Minute), "p1"),
			},
		},
		{
			name: "an order whose products lack product_id settles nothing",
			history: []Event{
				added(ago(2*day), "p1"),
				ordered(ago(day), map[string]any{"sku": "p1"}),
			},
			want: map[string]any{
				"abandoned_products": []string{"p1"}, "added_at": ago(2 * day),
			},
		},
		{
			name: "other events are ignored",
			history: []Event{
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
			got, ok := cartRule().evaluate(tt.history, testNow())
			if ok != (tt.want != nil) {
				t.Fatalf("member = %v (%v), want %v", ok, got, tt.want != nil)
			}
			if !reflect.DeepEqual(got, tt.want) {
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
		history []Event
		want    map[string]any // nil: not a member
	}{
		{
			name: "exactly 300 miles since the shoe purchase is a member",
			history: []Event{
				ordered(bought, shoe("s1")),
				workout(ago(20*day), 100.0, "miles"),
				workout(ago(10*day), json.Number("200"), nil),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "just under 300 miles is not a member",
			history: []Event{
				ordered(bought, shoe("s1")),
				workout(ago(20*day), 299.9, nil),
			},
		},
		{
			name: "runs before the shoe purchase do not count",
			history: []Event{
				workout(ago(40*day), 500.0, nil),
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 100.0, nil),
			},
		},
		{
			name: "only runs after the latest shoe purchase count",
			history: []Event{
				ordered(ago(60*day), shoe("s1")),
				workout(ago(50*day), 250.0, nil),
				ordered(bought, shoe("s2")),
				workout(ago(10*day), 200.0, nil),
			},
		},
		{
			name: "the latest shoe purchase names the shoe and the date",
			history: []Event{
				ordered(ago(60*day), shoe("s1")),
				workout(ago(50*day), 250.0, nil),
				ordered(bought, shoe("s2")),
				workout(ago(10*day), 310.0, nil),
			},
			want: member("s2", bought, 310),
		},
		{
			name: "a later purchase without shoes does not restart the count",
			history: []Event{
				ordered(bought, shoe("s1")),
				workout(ago(20*day), 200.0, nil),
				ordered(ago(15*day), map[string]any{"product_id": "sock", "category": "Socks"}),
				workout(ago(10*day), 150.0, nil),
			},
			want: member("s1", bought, 350),
		},
		{
			name: "the shoe is found among other products of the order",
			history: []Event{
				ordered(bought, map[string]any{"product_id": "sock", "category": "Socks"},
					shoe("s1")),
				workout(ago(10*day), 300.0, nil),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "the category is matched whatever its case",
			history: []Event{
				ordered(bought, map[string]any{"product_id": "s1", "category": "sHOES"}),
				workout(ago(10*day), 300.0, nil),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "kilometres are converted to miles",
			history: []Event{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 500.0, "km"),
			},
			want: member("s1", bought, 310.7),
		},
		{
			name: "the km unit is recognised in any case and with spaces",
			history: []Event{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 250.0, "KM"),
				workout(ago(9*day), 250.0, " Km "),
			},
			want: member("s1", bought, 310.7),
		},
		{
			name: "400 km is under 300 miles",
			history: []Event{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 400.0, "km"),
			},
		},
		{
			name: "another unit is taken as miles",
			history: []Event{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 300.0, "meters"),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "negative distances are ignored",
			history: []Event{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 300.0, nil),
				workout(ago(9*day), -50.0, nil),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "non-numeric distances are ignored and numeric strings count",
			history: []Event{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), "150", nil),
				workout(ago(9*day), "far", nil),
				workout(ago(8*day), true, nil),
				workout(ago(7*day), json.Number("150"), nil),
			},
			want: member("s1", bought, 300),
		},
		{
			name: "miles are rounded to one decimal",
			history: []Event{
				ordered(bought, shoe("s1")),
				workout(ago(10*day), 100.04, nil),
				workout(ago(9*day), 200.03, nil),
			},
			want: member("s1", bought, 300.1),
		},
		{
			name: "no shoe purchase means no member",
			history: []Event{
				ordered(bought, map[string]any{"product_id": "sock", "category": "Socks"}),
				workout(ago(10*day), 1000.0, nil),
			},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := shoeRule().evaluate(tt.history, testNow())
			if ok != (tt.want != nil) {
				t.Fatalf("member = %v (%v), want %v", ok, got, tt.want != nil)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestPathLookup(t *testing.T) {
	properties := map[string]any{
		"product_id": "p1",
		"count":      json.Number("3"),
		"address":    map[string]any{"city": "Lyon", "geo": map[string]any{"lat": 45.7}},
		"products": []any{
			map[string]any{"product_id": "a", "tags": []any{"red", "big"}},
			map[string]any{"product_id": "b"},
			map[string]any{"sku": "c"},
			"not an object",
		},
		"tags": []any{"x", "y"},
	}

	tests := []struct {
		name string
		path Path
		want []any
	}{
		{name: "a top-level key", path: "product_id", want: []any{"p1"}},
		{name: "a number keeps its JSON form", path: "count", want: []any{json.Number("3")}},
		{name: "a nested key", path: "address.city", want: []any{"Lyon"}},
		{name: "a key two levels down", path: "address.geo.lat", want: []any{45.7}},
		{
			name: "a field of every array element",
			path: "products[].product_id",
			want: []any{"a", "b"},
		},
		{name: "the elements of an array", path: "tags[]", want: []any{"x", "y"}},
		{
			name: "an array inside array elements",
			path: "products[].tags[]",
			want: []any{"red", "big"},
		},
		{name: "a missing key", path: "price"},
		{name: "a missing nested key", path: "address.zip"},
		{name: "a step through a scalar", path: "product_id.id"},
		{name: "an array addressed without []", path: "products.product_id"},
		{name: "[] on something that is not an array", path: "address[].city"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.path.lookup(properties)
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Path(%q).lookup = %#v, want %#v", tt.path, got, tt.want)
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

func TestValidateNamesTheAudienceAndKey(t *testing.T) {
	valid := func(name string) Definition {
		return Definition{Name: name, AbandonedCart: cartRule()}
	}
	tests := []struct {
		name     string
		defs     func() []Definition
		wantText []string // parts the error must contain; nil: valid
	}{
		{
			name: "one valid audience with the default schedule passes",
			defs: func() []Definition { return []Definition{valid("carts")} },
		},
		{
			name: "a valid custom schedule passes",
			defs: func() []Definition {
				d := valid("carts")
				d.Schedule = "0 * * * *"
				return []Definition{d}
			},
		},
		{
			name: "a bad cron schedule is reported",
			defs: func() []Definition {
				d := valid("carts")
				d.Schedule = "every hour"
				return []Definition{d}
			},
			wantText: []string{"audiences.carts.schedule", `"every hour"`},
		},
		{
			name: "a missing rule block is reported",
			defs: func() []Definition { return []Definition{{Name: "empty"}} },
			wantText: []string{"audiences.empty", "exactly one rule",
				"abandoned_cart", "distance_since_purchase"},
		},
		{
			name: "two rule blocks are reported",
			defs: func() []Definition {
				d := valid("both")
				d.DistanceSincePurchase = shoeRule()
				return []Definition{d}
			},
			wantText: []string{"audiences.both", "exactly one rule",
				"abandoned_cart", "distance_since_purchase"},
		},
		{
			name: "a duplicate name is reported",
			defs: func() []Definition {
				return []Definition{valid("carts"), valid("other"), valid("carts")}
			},
			wantText: []string{`"carts"`, "defined twice"},
		},
		{
			name: "a rule's missing key is reported",
			defs: func() []Definition {
				d := valid("carts")
				d.AbandonedCart.OrderEvent = ""
				return []Definition{d}
			},
			wantText: []string{"audiences.carts.abandoned_cart.order_event"},
		},
		{
			name: "every problem is reported at once",
			defs: func() []Definition {
				bad := valid("bad_cron")
				bad.Schedule = "61 * * * *"
				return []Definition{bad, {Name: "no_rule"}}
			},
			wantText: []string{"audiences.bad_cron.schedule", "audiences.no_rule"},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.defs())
			if tt.wantText == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %q", tt.wantText)
			}
			for _, part := range tt.wantText {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("Validate() = %q, want it to name %q", err, part)
				}
			}
		})
	}
}

func TestBuiltinsParseAndValidate(t *testing.T) {
	defs := Builtins()
	if err := Validate(defs); err != nil {
		t.Fatalf("Validate(Builtins()) = %v", err)
	}

	byName := map[string]Definition{}
	for _, d := range defs {
		byName[d.Name] = d
	}
	if got := len(byName); got != 2 {
		t.Fatalf("got %d built-in audiences, want 2", got)
	}
	cart := byName["cart_abandonment"]
	if !reflect.DeepEqual(cart.AbandonedCart, cartRule()) {
		t.Errorf("cart_abandonment rule = %+v, want %+v", cart.AbandonedCart, cartRule())
	}
	shoes := byName["shoe_reorder"]
	if !reflect.DeepEqual(shoes.DistanceSincePurchase, shoeRule()) {
		t.Errorf("shoe_reorder rule = %+v, want %+v",
			shoes.DistanceSincePurchase, shoeRule())
	}
	for _, d := range defs {
		if !d.NeedsEmail() {
			t.Errorf("%s does not require an email, want it to", d.Name)
		}
	}
}
