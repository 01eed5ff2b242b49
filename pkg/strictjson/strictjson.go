// Package strictjson decodes JSON that someone else wrote, refusing what
// encoding/json silently accepts: an object with the same key twice, where
// the last one wins and a reviewer who read the first was shown the wrong
// document. Keys count as the same when encoding/json would match both to
// one struct field, which it does case-insensitively ("acKind", "ACKIND").
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// ErrDuplicateKey means an object holds the same key twice.
var ErrDuplicateKey = errors.New("duplicate key")

// Unmarshal is json.Unmarshal that first refuses duplicate keys.
func Unmarshal(data []byte, v any) error {
	if err := CheckKeys(data); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// CheckKeys returns an error naming the first duplicate key in data, which
// must be valid JSON.
func CheckKeys(data []byte) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := value(d, "", 0); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("json: data after the top-level value")
	}
	return nil
}

// maxDepth matches encoding/json's own nesting limit.
const maxDepth = 10000

// value consumes one value; path names where it is, for the error.
func value(d *json.Decoder, path string, depth int) error {
	if depth > maxDepth {
		return errors.New("json: nested too deeply")
	}
	t, err := d.Token()
	if err != nil {
		return err
	}
	switch t {
	case json.Delim('{'):
		seen := map[string]bool{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return err
			}
			key := k.(string)
			f := fold(key)
			if seen[f] {
				return fmt.Errorf("%w %q", ErrDuplicateKey, path+key)
			}
			seen[f] = true
			if err := value(d, path+key+".", depth+1); err != nil {
				return err
			}
		}
		_, err = d.Token() // '}'
		return err
	case json.Delim('['):
		for i := 0; d.More(); i++ {
			if err := value(d, fmt.Sprintf("%s[%d].", strings.TrimSuffix(path, "."), i), depth+1); err != nil {
				return err
			}
		}
		_, err = d.Token() // ']'
		return err
	}
	return nil
}

// fold maps s to one representative of the keys encoding/json treats as
// equal: each rune becomes the smallest rune of its simple case folding
// orbit (so 'K', 'k' and the Kelvin sign all become 'K').
func fold(s string) string {
	var b strings.Builder
	for _, r := range s {
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b.WriteRune(min)
	}
	return b.String()
}
