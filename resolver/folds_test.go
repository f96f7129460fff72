package resolver_test

import (
	"testing"

	"github.com/knit-cdp/knit/resolver"
)

// Profiles merged into one survivor in one batch, their trait values tied:
// the one merged first keeps the field, as merges one message at a time
// leave it; in a chain the profile absorbed last in the chain keeps it.
// On PostgreSQL the batch writes its merges together at its end.
func TestFoldedMergesBreakTiesAsOneAtATime(t *testing.T) {
	t.Run("two merges into one survivor", func(t *testing.T) {
		atkRun(t, resolver.DefaultRules(), nil, []string{
			atkIdentify("s", "", "s0", `{"zip":"s"}`, atkT1),
			atkIdentify("a", "", "a0", `{"plan":"a","tier":"a"}`, atkT1),
			atkIdentify("b", "", "b0", `{"plan":"b","tier":"b"}`, atkT1),
			atkTrack("j1", "s0", atkT1, "anonymous_id:a0"),
			atkTrack("j2", "s0", atkT2, "anonymous_id:b0"),
		})
	})
	t.Run("three profiles in one message", func(t *testing.T) {
		atkRun(t, resolver.DefaultRules(), nil, []string{
			atkIdentify("s", "", "s0", `{"zip":"s"}`, atkT1),
			atkIdentify("a", "", "a0", `{"plan":"a"}`, atkT2),
			atkIdentify("b", "", "b0", `{"plan":"b"}`, atkT2),
			atkTrack("j", "s0", atkT1, "anonymous_id:a0", "anonymous_id:b0"),
		})
	})
	t.Run("a chain", func(t *testing.T) {
		atkRun(t, resolver.DefaultRules(), nil, []string{
			atkIdentify("c", "", "c0", `{"zip":"c"}`, atkT1),
			atkIdentify("b", "", "b0", `{"plan":"b"}`, atkT1),
			atkIdentify("a", "", "a0", `{"plan":"a","zip":"a"}`, atkT1),
			atkTrack("j1", "b0", atkT1, "anonymous_id:a0"),
			atkIdentify("w", "", "b0", `{"tier":"w"}`, atkT0),
			atkTrack("j2", "c0", atkT1, "anonymous_id:b0"),
			atkIdentify("after", "", "a0", `{"plan":"after"}`, atkT1),
		})
	})
}
