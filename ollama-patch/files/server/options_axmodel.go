package server

// Request options as integers where a float64 would lose them: the JSON
// decoder gives numbers in a map[string]any as float64, which rounds an
// integer above 2^53 and turns 2^63-1 into 2^63, which overflows int64 when
// api.Options.FromMap sets the option (seed 2^63-1 became a negative, random
// seed). The generate and chat handlers decode their options with
// integerOptions: float64 for every integer up to 2^53 (exact, and what
// FromMap expects for its float options), int64 beyond that (FromMap sets
// integer options from int64 as they are); an integer beyond int64 is
// refused rather than wrapped.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// exactFloat is the largest magnitude up to which every integer is a float64.
const exactFloat = 1 << 53

// integerOptions decodes a request's "options" object as described above.
func integerOptions(raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	for k, v := range m {
		nv, err := optionNumbers(v)
		if err != nil {
			return nil, fmt.Errorf("option %q: %w", k, err)
		}
		m[k] = nv
	}
	return m, nil
}

// optionNumbers replaces the json.Numbers in v.
func optionNumbers(v any) (any, error) {
	switch t := v.(type) {
	case json.Number:
		s := t.String()
		if !strings.ContainsAny(s, ".eE") {
			i, err := t.Int64()
			if err != nil {
				return nil, fmt.Errorf("%s is out of range (integers go up to 2^63-1)", s)
			}
			if i > exactFloat || i < -exactFloat {
				return i, nil
			}
			return float64(i), nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("%s is out of range", s)
		}
		return f, nil
	case []any:
		for i := range t {
			e, err := optionNumbers(t[i])
			if err != nil {
				return nil, err
			}
			t[i] = e
		}
	case map[string]any:
		for k := range t {
			e, err := optionNumbers(t[k])
			if err != nil {
				return nil, err
			}
			t[k] = e
		}
	}
	return v, nil
}
