package audiences

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Event is one track event of a profile as audience rules see it.
type Event struct {
	Name       string
	Time       time.Time
	Properties map[string]any
}

// AbandonedCart finds products whose latest add to cart lies between MinAge
// and MaxAge before now, with no order listing the product and no removal of
// it at or after that add.
type AbandonedCart struct {
	AddedEvent     string   `yaml:"added_event"`
	AddedProduct   Path     `yaml:"added_product"`
	OrderEvent     string   `yaml:"order_event"`
	OrderProduct   Path     `yaml:"order_product"`
	RemovedEvent   string   `yaml:"removed_event"`
	RemovedProduct Path     `yaml:"removed_product"`
	MinAge         Duration `yaml:"min_age"`
	MaxAge         Duration `yaml:"max_age"`
}

func (r *AbandonedCart) events() []string {
	return nonEmpty(r.AddedEvent, r.OrderEvent, r.RemovedEvent)
}

func (r *AbandonedCart) attributes() []string {
	return []string{"abandoned_products", "added_at"}
}

func (r *AbandonedCart) validate(prefix string) []string {
	prefix += ".abandoned_cart"
	problems := required(prefix, map[string]string{
		"added_event": r.AddedEvent, "added_product": string(r.AddedProduct),
		"order_event": r.OrderEvent, "order_product": string(r.OrderProduct),
	})
	if r.RemovedEvent != "" && r.RemovedProduct == "" {
		problems = append(problems, prefix+".removed_product is required "+
			"when removed_event is set")
	}
	if r.MaxAge == 0 {
		problems = append(problems, prefix+".max_age is required (for example 7d)")
	} else if r.MinAge < 0 || r.MaxAge <= r.MinAge {
		problems = append(problems, fmt.Sprintf("%s: max_age (%s) must be "+
			"longer than min_age (%s), and neither negative", prefix, r.MaxAge, r.MinAge))
	}
	return problems
}

func (r *AbandonedCart) evaluate(history []Event, now time.Time) (map[string]any, bool) {
	lastAdd := map[string]time.Time{}
	for _, e := range history {
		if e.Name != r.AddedEvent {
			continue
		}
		for _, product := range r.AddedProduct.strings(e.Properties) {
			if e.Time.After(lastAdd[product]) || lastAdd[product].IsZero() {
				lastAdd[product] = e.Time
			}
		}
	}

	earliest := now.Add(-time.Duration(r.MaxAge))
	latest := now.Add(-time.Duration(r.MinAge))
	var abandoned []string
	var addedAt time.Time
	for product, at := range lastAdd {
		if at.Before(earliest) || at.After(latest) || r.settled(history, product, at) {
			continue
		}
		abandoned = append(abandoned, product)
		if at.After(addedAt) {
			addedAt = at
		}
	}
	if len(abandoned) == 0 {
		return nil, false
	}

	sort.Strings(abandoned)
	return map[string]any{"abandoned_products": abandoned, "added_at": addedAt}, true
}

// settled reports whether product was ordered or removed at or after since.
func (r *AbandonedCart) settled(history []Event, product string, since time.Time) bool {
	for _, e := range history {
		if e.Time.Before(since) {
			continue
		}
		var listed []string
		switch e.Name {
		case r.OrderEvent:
			listed = r.OrderProduct.strings(e.Properties)
		case r.RemovedEvent:
			listed = r.RemovedProduct.strings(e.Properties)
		default:
			continue
		}
		for _, p := range listed {
			if p == product {
				return true
			}
		}
	}
	return false
}

// DistanceSincePurchase finds people whose activity since their latest
// purchase of a product in Category adds up to ThresholdMiles or more.
// Distances whose unit is "km" are converted; any other unit, or none, is
// taken as miles.
type DistanceSincePurchase struct {
	PurchaseEvent    string  `yaml:"purchase_event"`
	Products         Path    `yaml:"products"`
	ProductID        Path    `yaml:"product_id"`
	CategoryField    Path    `yaml:"category_field"`
	Category         string  `yaml:"category"`
	ProductAttribute string  `yaml:"product_attribute"`
	ActivityEvent    string  `yaml:"activity_event"`
	Distance         Path    `yaml:"distance"`
	DistanceUnit     Path    `yaml:"distance_unit"`
	ThresholdMiles   float64 `yaml:"threshold_miles"`
}

const kilometresPerMile = 1.609344

func (r *DistanceSincePurchase) events() []string {
	return nonEmpty(r.PurchaseEvent, r.ActivityEvent)
}

func (r *DistanceSincePurchase) attributes() []string {
	return []string{r.productAttribute(), "purchased_at", "miles_since_purchase"}
}

func (r *DistanceSincePurchase) productAttribute() string {
	if r.ProductAttribute == "" {
		return "product"
	}
	return r.ProductAttribute
}

func (r *DistanceSincePurchase) validate(prefix string) []string {
	prefix += ".distance_since_purchase"
	problems := required(prefix, map[string]string{
		"purchase_event": r.PurchaseEvent, "products": string(r.Products),
		"product_id": string(r.ProductID), "category_field": string(r.CategoryField),
		"category": r.Category, "activity_event": r.ActivityEvent,
		"distance": string(r.Distance),
	})
	if r.ThresholdMiles <= 0 {
		problems = append(problems, prefix+".threshold_miles must be above 0")
	}
	return problems
}

func (r *DistanceSincePurchase) evaluate(history []Event, now time.Time) (map[string]any, bool) {
	purchased, product, found := r.latestPurchase(history)
	if !found {
		return nil, false
	}

	miles := 0.0
	for _, e := range history {
		if e.Name != r.ActivityEvent || !e.Time.After(purchased) {
			continue
		}
		// A junk distance near the float limit must not turn the sum into
		// +Inf, which no export can encode.
		if sum := miles + r.miles(e.Properties); !math.IsInf(sum, 0) {
			miles = sum
		}
	}
	if miles < r.ThresholdMiles {
		return nil, false
	}
	return map[string]any{
		r.productAttribute():   product,
		"purchased_at":         purchased,
		"miles_since_purchase": roundTenth(miles),
	}, true
}

// latestPurchase finds the latest purchase event holding a product of the
// category; history is in time order.
func (r *DistanceSincePurchase) latestPurchase(history []Event) (time.Time, string, bool) {
	for i := len(history) - 1; i >= 0; i-- {
		e := history[i]
		if e.Name != r.PurchaseEvent {
			continue
		}
		for _, item := range r.Products.lookup(e.Properties) {
			fields, ok := item.(map[string]any)
			if !ok || !strings.EqualFold(r.CategoryField.first(fields), r.Category) {
				continue
			}
			return e.Time, r.ProductID.first(fields), true
		}
	}
	return time.Time{}, "", false
}

func (r *DistanceSincePurchase) miles(properties map[string]any) float64 {
	values := r.Distance.lookup(properties)
	if len(values) == 0 {
		return 0
	}
	distance, ok := number(values[0])
	if !ok || distance < 0 {
		return 0
	}
	if r.DistanceUnit != "" &&
		strings.EqualFold(strings.TrimSpace(r.DistanceUnit.first(properties)), "km") {
		return distance / kilometresPerMile
	}
	return distance
}

// roundTenth rounds to one decimal; numbers too large to carry a decimal
// are returned as they are, so rounding never overflows.
func roundTenth(x float64) float64 {
	if math.Abs(x) > 1e15 {
		return x
	}
	return math.Round(x*10) / 10
}

func nonEmpty(values ...string) []string {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func required(prefix string, fields map[string]string) []string {
	var problems []string
	for key, value := range fields {
		if strings.TrimSpace(value) == "" {
			problems = append(problems, fmt.Sprintf("%s.%s is required", prefix, key))
		}
	}
	sort.Strings(problems)
	return problems
}
