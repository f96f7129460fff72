package audiences

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestHugeDistancesDoNotOverflowTheSum(t *testing.T) {
	history := []Event{
		ordered(ago(72*time.Hour), shoe("shoe-d")),
		workout(ago(48*time.Hour), 1e308, nil),
		workout(ago(24*time.Hour), 1e308, nil),
	}

	attrs, member := shoeRule().evaluate(history, testNow())
	if !member {
		t.Fatal("a runner with a huge distance is not a member")
	}
	miles, _ := attrs["miles_since_purchase"].(float64)
	if math.IsInf(miles, 0) || math.IsNaN(miles) {
		t.Fatalf("miles_since_purchase = %v, want a finite number", miles)
	}
	if _, err := json.Marshal(attrs); err != nil {
		t.Errorf("attributes do not encode: %v", err)
	}
}
