// The pause between retries and reconnects: half fixed, half random.

package sessionregistry

import (
	"testing"
	"time"
)

func TestJitterKeepsHalfTheDelayAndRandomizesTheRest(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, 200 * time.Millisecond, 5 * time.Second} {
		seen := map[time.Duration]bool{}
		for i := 0; i < 1000; i++ {
			j := jitter(d)
			if j < d/2 || j > d {
				t.Fatalf("jitter(%v) = %v, outside [%v, %v]", d, j, d/2, d)
			}
			seen[j] = true
		}
		// A thousand draws from half a millisecond or more of nanoseconds do not all coincide.
		if len(seen) < 2 {
			t.Fatalf("jitter(%v) gave one value 1000 times", d)
		}
	}
	if jitter(0) != 0 {
		t.Fatal("jitter(0) is not 0")
	}
}
