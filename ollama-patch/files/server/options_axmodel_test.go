package server

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/ollama/ollama/api"
)

func TestAX650OptionsIntegerPath(t *testing.T) {
	for _, tc := range []struct {
		json string
		seed int
	}{
		{"0", 0}, {"-1", -1}, {"2147483648", 1 << 31}, {"9007199254740993", 1<<53 + 1},
		{"9223372036854775807", math.MaxInt64}, {"-9223372036854775808", math.MinInt64},
	} {
		raw := `{"seed":` + tc.json + `,"temperature":1,"num_predict":5,"stop":["x"]}`
		m, err := integerOptions(json.RawMessage(raw))
		if err != nil {
			t.Fatal(err)
		}
		o := api.DefaultOptions()
		if err := o.FromMap(m); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if o.Seed != tc.seed || o.Temperature != 1 || o.NumPredict != 5 || len(o.Stop) != 1 {
			t.Errorf("%s: seed %d temperature %v num_predict %d stop %v", raw, o.Seed, o.Temperature, o.NumPredict, o.Stop)
		}
	}
	// Beyond int64: refused, not wrapped.
	_, err := integerOptions(json.RawMessage(`{"seed":18446744073709551616}`))
	if err == nil || !strings.Contains(err.Error(), `option "seed": 18446744073709551616 is out of range`) {
		t.Errorf("seed 2^64: %v", err)
	}
	for _, raw := range []string{``, `null`} {
		if m, err := integerOptions(json.RawMessage(raw)); m != nil || err != nil {
			t.Errorf("%q: %v %v", raw, m, err)
		}
	}
	if _, err := integerOptions(json.RawMessage(`[1]`)); err == nil {
		t.Error("options that are not an object were accepted")
	}
}
