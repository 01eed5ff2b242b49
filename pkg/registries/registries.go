// Package registries reads skiff's registries configuration
// (<local-config>/registries.conf, TOML in the shape of
// containers-registries.conf(5) version 2): per registry, mirrors tried
// before it, whether it may be reached over plain http or unverified TLS,
// whether it is blocked; and short-name aliases for docker:// references.
// The CLI and any later daemon (CRI) read it through this package only.
// Parsing is strict: an unknown key or a bad value is an error naming the
// file and the key.
package registries

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// FileName is the configuration's name in the local config directory.
const FileName = "registries.conf"

// maxFile bounds the file; a configuration is a few KiB.
const maxFile = 1 << 20

// Config is a loaded configuration; the zero value configures nothing.
type Config struct {
	// Registries, longest location first (the most specific wins).
	Registries []Registry `toml:"registry"`
	// Aliases map a short name, as written after docker:// ("redis",
	// "team/app"), to a fully qualified name ("quay.io/team/redis").
	Aliases map[string]string `toml:"aliases"`
}

// Registry configures the images under Location.
type Registry struct {
	// Location is REGISTRY[/NAMESPACE]: the registry, or part of it.
	Location string `toml:"location"`
	// Insecure speaks plain http to it (--insecure-options=http for it
	// alone).
	Insecure bool `toml:"insecure"`
	// TLSVerify false accepts any certificate from it
	// (--insecure-options=tls for it alone); unset means true.
	TLSVerify *bool `toml:"tls-verify"`
	// Blocked refuses every pull from it.
	Blocked bool `toml:"blocked"`
	// Mirrors are tried in order before the registry itself.
	Mirrors []Mirror `toml:"mirror"`
}

// Mirror is another location that serves the same images.
type Mirror struct {
	// Location is REGISTRY[/NAMESPACE]; it replaces the Registry's
	// Location in the image's name.
	Location string `toml:"location"`
	// Insecure and TLSVerify as for a Registry, for the mirror.
	Insecure  bool  `toml:"insecure"`
	TLSVerify *bool `toml:"tls-verify"`
}

// Endpoint is one place to pull an image from.
type Endpoint struct {
	Host       string // REGISTRY[:PORT]
	Repository string // the image's repository there
	Insecure   bool   // plain http
	SkipVerify bool   // any TLS certificate
	Mirror     bool   // false for the image's own registry
}

// Load reads the configuration at path; a missing file configures nothing.
func Load(path string) (*Config, error) {
	b, err := safefile.ReadFile(path, maxFile)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load registries: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return c, nil
}

// Parse parses and checks a configuration.
func Parse(b []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadConfig, oneLine(err))
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%w: unknown key %q", ErrBadConfig, und[0].String())
	}
	seen := map[string]bool{}
	for i := range c.Registries {
		r := &c.Registries[i]
		loc, err := location(r.Location)
		if err != nil {
			return nil, fmt.Errorf("%w: registry.location: %w", ErrBadConfig, err)
		}
		if seen[loc] {
			return nil, fmt.Errorf("%w: registry.location %q configured twice", ErrBadConfig, r.Location)
		}
		seen[loc], r.Location = true, loc
		for j := range r.Mirrors {
			m := &r.Mirrors[j]
			if m.Location, err = location(m.Location); err != nil {
				return nil, fmt.Errorf("%w: registry.mirror.location (of %s): %w", ErrBadConfig, loc, err)
			}
		}
	}
	sort.SliceStable(c.Registries, func(i, j int) bool { return len(c.Registries[i].Location) > len(c.Registries[j].Location) })
	for short, full := range c.Aliases {
		if err := checkAlias(short, full); err != nil {
			return nil, fmt.Errorf("%w: aliases.%q: %w", ErrBadConfig, short, err)
		}
	}
	return &c, nil
}

// oneLine keeps the first line of a TOML error (which names the line
// and the key); the rest is a picture of the file.
func oneLine(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return pe.Error()
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// location checks REGISTRY[/NAMESPACE] and spells Docker Hub docker.io.
func location(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty; want REGISTRY[:PORT][/NAMESPACE]")
	}
	host, rest, _ := strings.Cut(s, "/")
	if !isRegistry(host) || imageref.CheckPrefix(s) != nil {
		return "", fmt.Errorf("%q is not REGISTRY[:PORT][/NAMESPACE]", s)
	}
	if host == "index.docker.io" || host == "registry-1.docker.io" {
		host = imageref.DefaultRegistry
	}
	if rest != "" {
		return host + "/" + rest, nil
	}
	return host, nil
}

// isRegistry is Docker's rule for a first name component that names a
// registry.
func isRegistry(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

func checkAlias(short, full string) error {
	first, _, _ := strings.Cut(short, "/")
	if _, err := imageref.Parse("docker://" + short); err != nil || isRegistry(first) || strings.ContainsAny(short, ":@") {
		return fmt.Errorf("%q is not a short name (NAME without registry, tag or digest)", short)
	}
	host, _, _ := strings.Cut(full, "/")
	if _, err := imageref.Parse("docker://" + full); err != nil || !isRegistry(host) || !strings.Contains(full, "/") || strings.ContainsAny(full[len(host):], ":@") {
		return fmt.Errorf("%q is not REGISTRY/NAME without tag or digest", full)
	}
	return nil
}

// Expand replaces the short name of a docker:// reference by its alias,
// keeping the tag or digest: with aliases {redis = "quay.io/x/redis"},
// "docker://redis:7" becomes "docker://quay.io/x/redis:7". A reference
// that names its registry, has no alias, or is not docker:// is returned
// as it is; so is anything when no aliases are configured.
func (c *Config) Expand(s string) string {
	rest, ok := strings.CutPrefix(s, "docker://")
	if !ok || len(c.Aliases) == 0 {
		return s
	}
	name, suffix := rest, ""
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name, suffix = name[:i], name[i:]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, suffix = name[:i], name[i:]+suffix
	}
	if first, _, _ := strings.Cut(name, "/"); isRegistry(first) && strings.Contains(name, "/") {
		return s
	}
	full, ok := c.Aliases[name]
	if !ok {
		return s
	}
	return "docker://" + full + suffix
}

// find returns the most specific registry entry for the name
// REGISTRY/REPOSITORY.
func (c *Config) find(name string) (Registry, bool) {
	for _, r := range c.Registries {
		if name == r.Location || strings.HasPrefix(name, r.Location+"/") {
			return r, true
		}
	}
	return Registry{}, false
}

// Endpoints lists where to pull ref from: its mirrors in order, then its
// own registry (always last). A blocked registry is ErrBlocked.
func (c *Config) Endpoints(ref imageref.Ref) ([]Endpoint, error) {
	own := Endpoint{Host: ref.Registry, Repository: ref.Repository}
	r, ok := c.find(ref.Name())
	if !ok {
		return []Endpoint{own}, nil
	}
	if r.Blocked {
		return nil, fmt.Errorf("%s: %w (%s)", ref.Name(), ErrBlocked, r.Location)
	}
	own.Insecure, own.SkipVerify = r.Insecure, r.TLSVerify != nil && !*r.TLSVerify
	var eps []Endpoint
	for _, m := range r.Mirrors {
		name := m.Location + strings.TrimPrefix(ref.Name(), r.Location)
		host, repo, _ := strings.Cut(name, "/")
		if repo == "" {
			return nil, fmt.Errorf("%w: mirror %s of %s leaves %s no repository name", ErrBadConfig, m.Location, r.Location, ref.Name())
		}
		eps = append(eps, Endpoint{Host: host, Repository: repo, Insecure: m.Insecure, SkipVerify: m.TLSVerify != nil && !*m.TLSVerify, Mirror: true})
	}
	return append(eps, own), nil
}

// Host returns how to reach the registry host (REGISTRY[:PORT]) itself,
// as for logging in: insecure or unverified when an entry for the whole
// registry, or a mirror on it, says so.
func (c *Config) Host(host string) Endpoint {
	ep := Endpoint{Host: host}
	for _, r := range c.Registries {
		if r.Location == host {
			ep.Insecure = ep.Insecure || r.Insecure
			ep.SkipVerify = ep.SkipVerify || (r.TLSVerify != nil && !*r.TLSVerify)
		}
		for _, m := range r.Mirrors {
			if h, _, _ := strings.Cut(m.Location, "/"); h == host {
				ep.Insecure = ep.Insecure || m.Insecure
				ep.SkipVerify = ep.SkipVerify || (m.TLSVerify != nil && !*m.TLSVerify)
			}
		}
	}
	return ep
}
