// Package policy is the run policy: which images may run, decided by where
// they came from (their store.Provenance), per appc name prefix or, for OCI
// images, per registry. It is read from policy.json in the local config
// directory (/etc/skiff); without that file the default applies. Every
// front end that runs images (the CLI, later the CRI daemon) asks the same
// policy; docs/policy.md describes the file.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"

	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/store"
)

// FileName is the policy's file in the local config directory.
const FileName = "policy.json"

// DefaultAccept is what runs by name when the policy says nothing else.
var DefaultAccept = []store.Provenance{store.Verified, store.DigestPinned, store.BuiltLocally}

// Policy is a parsed run policy. It is immutable once made.
type Policy struct {
	source     string // the file, or "the default policy"
	accept     []store.Provenance
	byImageID  bool
	names      map[string][]store.Provenance // appc name prefix → accepted
	registries map[string][]store.Provenance // OCI registry[/repository] prefix → accepted
}

// file is policy.json as written.
type file struct {
	Default        *[]string           `json:"default"`
	AcceptImageIDs *bool               `json:"acceptImageIDs"`
	Names          map[string][]string `json:"names"`
	Registries     map[string][]string `json:"registries"`
}

// Default returns the policy in force when there is no policy file.
func Default() *Policy {
	return &Policy{source: "the default policy", accept: DefaultAccept, byImageID: true}
}

// Load reads FileName in configDir; a missing file gives Default.
func Load(configDir string) (*Policy, error) {
	path := filepath.Join(configDir, FileName)
	// O_NONBLOCK: a FIFO in its place must not hang the caller.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("policy %s: %w: not a regular file", path, ErrBadPolicy)
	}
	const maxSize = 1 << 20
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("policy %s: %w: larger than %d bytes", path, ErrBadPolicy, maxSize)
	}
	return Parse(data, path)
}

// Parse parses a policy file's content; source names it in errors.
func Parse(data []byte, source string) (*Policy, error) {
	p, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w: %s", source, ErrBadPolicy, strings.TrimPrefix(err.Error(), "json: "))
	}
	p.source = source
	return p, nil
}

func parse(data []byte) (*Policy, error) {
	if err := noDuplicateKeys(json.NewDecoder(bytes.NewReader(data))); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f file
	var te *json.UnmarshalTypeError
	if err := dec.Decode(&f); errors.As(err, &te) {
		return nil, fmt.Errorf("%s: a JSON %s where %s belongs", te.Field, te.Value, jsonType[te.Type.Kind()])
	} else if err != nil {
		return nil, errors.New(strings.Replace(err.Error(), "unknown field", "unknown key", 1))
	}
	if dec.More() {
		return nil, errors.New("data after the top-level object")
	}
	p := Default()
	var err error
	if f.Default != nil {
		if p.accept, err = provenances("default", *f.Default); err != nil {
			return nil, err
		}
	}
	if f.AcceptImageIDs != nil {
		p.byImageID = *f.AcceptImageIDs
	}
	if p.names, err = scopes("names", f.Names, checkName); err != nil {
		return nil, err
	}
	if p.registries, err = scopes("registries", f.Registries, checkRegistry); err != nil {
		return nil, err
	}
	return p, nil
}

// jsonType names what the policy file's Go types want, for errors.
var jsonType = map[reflect.Kind]string{
	reflect.Slice: "a list of provenances", reflect.Map: "an object", reflect.Bool: "true or false",
	reflect.Struct: "an object", reflect.String: "a string",
}

func scopes(key string, in map[string][]string, check func(string) error) (map[string][]store.Provenance, error) {
	out := map[string][]store.Provenance{}
	for prefix, list := range in {
		at := fmt.Sprintf("%s[%q]", key, prefix)
		if err := check(prefix); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		ps, err := provenances(at, list)
		if err != nil {
			return nil, err
		}
		out[prefix] = ps
	}
	return out, nil
}

func provenances(at string, list []string) ([]store.Provenance, error) {
	if list == nil {
		return nil, fmt.Errorf("%s: a list of provenances, not null", at)
	}
	out := []store.Provenance{}
	for _, s := range list {
		p, err := store.ParseProvenance(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// checkName accepts an appc name or a prefix of one ending at a "/".
func checkName(prefix string) error {
	if _, err := types.NewACIdentifier(prefix); err != nil || strings.HasSuffix(prefix, "/") {
		return errors.New("not an appc name prefix (such as example.com or example.com/team)")
	}
	return nil
}

// checkRegistry accepts host[:port][/repository...].
func checkRegistry(prefix string) error {
	host, _, _ := strings.Cut(prefix, "/")
	if host == "" || strings.Contains(prefix, "://") || strings.HasSuffix(prefix, "/") ||
		strings.ContainsAny(prefix, " \t\n@") || strings.Contains(prefix, "//") {
		return errors.New("not a registry (such as registry.example.com or registry.example.com:5000/team)")
	}
	return nil
}

// noDuplicateKeys walks one JSON value and fails on an object that names
// a key twice: encoding/json would keep the last one silently.
func noDuplicateKeys(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key := k.(string)
			if seen[key] {
				return fmt.Errorf("duplicate key %q", key)
			}
			seen[key] = true
			if err := noDuplicateKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	case json.Delim('['):
		for dec.More() {
			if err := noDuplicateKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	}
	return err
}

// Kind says which kind of reference an image was found by.
type Kind int

const (
	// ACI: an appc image, matched by its name against Names.
	ACI Kind = iota
	// OCI: an OCI image, matched by registry/repository against Registries.
	OCI
)

// Request is one image about to run.
type Request struct {
	Kind Kind
	// Name is the appc name, or the OCI registry/repository.
	Name       string
	ID         string // image ID, for messages
	Provenance store.Provenance
	// ByImageID: the user named this image by its full ID, a digest they
	// typed, rather than by a name, file or URL.
	ByImageID bool
	// Insecure: this run itself says --insecure-options=image, which lets
	// any image of a known provenance run.
	Insecure bool
	// Untrusted: the image is verified, but its signing key is no longer
	// trusted for its name; it counts as insecure.
	Untrusted bool
}

// Check returns nil if r may run, else an ErrRefused error saying why and
// what to do.
func (p *Policy) Check(r Request) error {
	if r.ByImageID && p.byImageID {
		return nil
	}
	prov, what := r.Provenance, "it is "+string(r.Provenance)
	if r.Untrusted && prov == store.Verified {
		prov, what = store.Insecure, "its signing key is no longer trusted for it"
	}
	accept := p.Accepted(r.Kind, r.Name)
	// The run's own --insecure-options=image overrides the policy, for
	// every provenance skiff knows.
	if slices.Contains(accept, prov) || r.Insecure && slices.Contains(store.Provenances, prov) {
		return nil
	}
	names := make([]string, len(accept))
	for i, a := range accept {
		names[i] = string(a)
	}
	acc := "nothing"
	if len(names) > 0 {
		acc = "only " + strings.Join(names, ", ")
	}
	hint := "; pass --insecure-options=image to run it anyway"
	if prov == store.Insecure {
		hint += ", or fetch it again with its signature"
	}
	return fmt.Errorf("image %s (%s): %w: %s, but %s allows %s for it%s",
		r.Name, short(r.ID), ErrRefused, what, p.source, acc, hint)
}

// Accepted returns the provenances that may run under name: those of the
// longest matching prefix, else the default.
func (p *Policy) Accepted(kind Kind, name string) []store.Provenance {
	m := p.names
	if kind == OCI {
		m = p.registries
	}
	best, found := "", false
	for prefix := range m {
		if (name == prefix || strings.HasPrefix(name, prefix+"/")) && (!found || len(prefix) > len(best)) {
			best, found = prefix, true
		}
	}
	if found {
		return m[best]
	}
	return p.accept
}

func short(id string) string {
	if len(id) > 19 {
		return id[:19]
	}
	return id
}
