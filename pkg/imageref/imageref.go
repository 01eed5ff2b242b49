// Package imageref parses and normalizes references to OCI and Docker
// images: docker://[REGISTRY[:PORT]/]NAME[:TAG|@sha256:DIGEST] with
// Docker's naming rules, oci:DIR[:TAG], oci-archive:FILE[:TAG] and
// docker-archive:FILE. A string with none of these prefixes is not an
// OCI reference (ErrNotOCI): a bare name keeps meaning an appc name, so
// "oci:/x" never reaches appc discovery and a bare name never reaches a
// registry.
package imageref

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Transport says where an image comes from.
type Transport string

// The transports, spelled as their reference prefixes without the colon.
const (
	Docker        Transport = "docker"         // a registry (distribution v2 API)
	OCI           Transport = "oci"            // an OCI image layout directory
	OCIArchive    Transport = "oci-archive"    // a tar of an OCI image layout
	DockerArchive Transport = "docker-archive" // `docker save` / `podman save` output
)

// Docker's defaults.
const (
	DefaultRegistry = "docker.io"
	DefaultTag      = "latest"
	officialPrefix  = "library/"
)

// Bounds on the parts, as Docker's (name 255) and the OCI spec's (tag 128).
const (
	maxNameLen = 255
	maxTagLen  = 128
	maxPathLen = 4096
)

var (
	// One path component of a repository name (distribution/reference).
	componentRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`) })
	// A registry host: DNS labels, or an IPv6 literal in brackets, then an
	// optional port.
	registryRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]{1,5})?$`)
	})
	tagRE    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`) })
	digestRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^sha256:[a-f0-9]{64}$`) })
	// The OCI layout's org.opencontainers.image.ref.name grammar.
	layoutRefRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9]+(?:(?:[+._-]|/)[A-Za-z0-9]+)*$`) })
)

// Ref is a parsed, normalized reference. Registry, Repository, Tag and
// Digest belong to Docker references; Path (and Tag, optional) to the
// others.
type Ref struct {
	Transport  Transport
	Registry   string // "docker.io", "127.0.0.1:5000"
	Repository string // "library/busybox"
	Tag        string // "latest" by default for Docker; may be empty with a Digest
	Digest     string // "sha256:<64 hex>", pins the manifest
	Path       string // the layout directory or the archive file, as given
}

// Parse parses s. It returns an error wrapping ErrNotOCI when s has no
// OCI transport prefix, and one wrapping ErrInvalid when it has one but
// is malformed.
func Parse(s string) (Ref, error) {
	tr, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Ref{}, fmt.Errorf("parse %q: %w", s, ErrNotOCI)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Ref{}, fmt.Errorf("parse %q: %w: control character", s, ErrInvalid)
	}
	var (
		r   Ref
		err error
	)
	switch Transport(tr) {
	case Docker:
		name, found := strings.CutPrefix(rest, "//")
		if !found {
			return Ref{}, fmt.Errorf("parse %q: %w: docker references start with docker://", s, ErrInvalid)
		}
		r, err = parseDocker(name)
	case OCI, OCIArchive:
		r, err = parseLayout(Transport(tr), rest)
	case DockerArchive:
		r, err = Ref{Transport: DockerArchive, Path: rest}, checkPath(rest)
	default:
		return Ref{}, fmt.Errorf("parse %q: %w", s, ErrNotOCI)
	}
	if err != nil {
		return Ref{}, fmt.Errorf("parse %q: %w: %w", s, ErrInvalid, err)
	}
	return r, nil
}

// parseDocker applies Docker's rules: the first component is a registry
// only if it has a "." or ":", is "localhost", or has an upper-case letter;
// otherwise the registry is docker.io, where one-component names get the
// "library/" prefix. Repository names must be lower case.
func parseDocker(s string) (Ref, error) {
	r := Ref{Transport: Docker}
	name := s
	if n, d, ok := strings.Cut(s, "@"); ok {
		if !digestRE().MatchString(d) {
			return Ref{}, fmt.Errorf("digest %q is not sha256: and 64 lower-case hex digits", d)
		}
		name, r.Digest = n, d
	}
	// A tag follows the last colon after the last slash (a port's colon
	// comes before a slash).
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, r.Tag = name[:i], name[i+1:]
		if !tagRE().MatchString(r.Tag) {
			return Ref{}, fmt.Errorf("tag %q: want [A-Za-z0-9_][A-Za-z0-9_.-]*, at most %d characters", r.Tag, maxTagLen)
		}
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	first, remainder, hasSlash := strings.Cut(name, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		if !registryRE().MatchString(first) {
			return Ref{}, fmt.Errorf("registry %q is not a host[:port]", first)
		}
		r.Registry, name = first, remainder
		if r.Registry == "index.docker.io" || r.Registry == "registry-1.docker.io" {
			r.Registry = DefaultRegistry
		}
	} else {
		r.Registry = DefaultRegistry
	}
	if name == "" {
		return Ref{}, fmt.Errorf("empty repository name")
	}
	if r.Registry == DefaultRegistry && !strings.Contains(name, "/") {
		name = officialPrefix + name
	}
	if len(name) > maxNameLen {
		return Ref{}, fmt.Errorf("repository name longer than %d characters", maxNameLen)
	}
	for c := range strings.SplitSeq(name, "/") {
		if !componentRE().MatchString(c) {
			if strings.ToLower(c) != c {
				return Ref{}, fmt.Errorf("repository name %q must be lower case", name)
			}
			return Ref{}, fmt.Errorf("repository name component %q: want lower-case letters and digits joined by '.', '_', '__' or '-'", c)
		}
	}
	r.Repository = name
	return r, nil
}

// parseLayout splits PATH[:TAG] at the first colon, as skopeo does, so a
// layout path cannot hold a colon.
func parseLayout(tr Transport, s string) (Ref, error) {
	p, tag, _ := strings.Cut(s, ":")
	if err := checkPath(p); err != nil {
		return Ref{}, err
	}
	if tag != "" && (len(tag) > maxTagLen || !layoutRefRE().MatchString(tag)) {
		return Ref{}, fmt.Errorf("layout reference name %q is not [A-Za-z0-9] words joined by '+', '.', '_', '-' or '/', at most %d characters", tag, maxTagLen)
	}
	return Ref{Transport: tr, Path: p, Tag: tag}, nil
}

func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case len(p) > maxPathLen:
		return fmt.Errorf("path longer than %d bytes", maxPathLen)
	}
	return nil
}

// Name is the Docker repository name with its registry,
// "docker.io/library/busybox"; empty for other transports.
func (r Ref) Name() string {
	if r.Transport != Docker {
		return ""
	}
	return r.Registry + "/" + r.Repository
}

// String is the canonical form, which Parse maps to the same Ref:
// "docker://docker.io/library/busybox:latest", "oci:/srv/img:v1".
func (r Ref) String() string {
	switch r.Transport {
	case Docker:
		s := "docker://" + r.Name()
		if r.Tag != "" {
			s += ":" + r.Tag
		}
		if r.Digest != "" {
			s += "@" + r.Digest
		}
		return s
	case OCI, OCIArchive:
		if r.Tag != "" {
			return string(r.Transport) + ":" + r.Path + ":" + r.Tag
		}
	}
	return string(r.Transport) + ":" + r.Path
}

// CheckPrefix accepts a registry with a repository prefix, as `skiff
// trust --prefix` names the Docker images a key signs:
// "127.0.0.1:5000", "registry.example.com/team/app". Every part must be
// a registry host or a repository component, so no ".." or "," passes.
func CheckPrefix(s string) error {
	parts := strings.Split(s, "/")
	if !registryRE().MatchString(parts[0]) || len(s) > maxNameLen {
		return fmt.Errorf("%w: %q is not REGISTRY[/NAME]", ErrInvalid, s)
	}
	for _, c := range parts[1:] {
		if !componentRE().MatchString(c) {
			return fmt.Errorf("%w: %q is not REGISTRY[/NAME]", ErrInvalid, s)
		}
	}
	return nil
}
