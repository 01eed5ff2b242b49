package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// checkDupKeys returns an error naming the first object key that appears
// twice in one JSON object of b. encoding/json keeps the last one silently,
// so a config could say one thing to a reader and another to a plugin.
func checkDupKeys(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		obj  bool
		seen map[string]bool
		key  bool // the next token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.key {
			if k, ok := tok.(string); ok {
				if top.seen[k] {
					return fmt.Errorf("duplicate key %q", k)
				}
				top.seen[k] = true
				top.key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, seen: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: the enclosing object expects a key next.
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].key = true
		}
	}
}
