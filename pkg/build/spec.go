// Package build makes microcontainers, as Oracle's Smith did: an image
// holding one program, the libraries it needs and nothing else, built
// reproducibly from Debian packages and host files (docs/build.md).
package build

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Spec is what to build; its YAML keys are documented in docs/build.md.
type Spec struct {
	Name     string            `yaml:"name"`
	Base     string            `yaml:"base"`
	Debs     []string          `yaml:"debs"`
	Depends  *bool             `yaml:"depends"` // nil: true
	Paths    []string          `yaml:"paths"`   // HOSTPATH[:IMAGEPATH]
	Programs []string          `yaml:"programs"`
	Exec     []string          `yaml:"exec"`
	User     string            `yaml:"user"`
	Users    []User            `yaml:"users"`
	Groups   []Group           `yaml:"groups"`
	Env      []string          `yaml:"env"`
	WorkDir  string            `yaml:"workdir"`
	Ports    []string          `yaml:"ports"`
	Volumes  []string          `yaml:"volumes"`
	Keep     []string          `yaml:"keep"`
	Owners   []Owner           `yaml:"owners"`
	Labels   map[string]string `yaml:"labels"`
	Lock     string            `yaml:"lock"`
	Output   string            `yaml:"output"`
}

// User is one line of the generated /etc/passwd.
type User struct {
	Name string `yaml:"name"`
	UID  *int   `yaml:"uid"`
	GID  *int   `yaml:"gid"`
	Home string `yaml:"home"`
}

// Group is one line of the generated /etc/group.
type Group struct {
	Name string `yaml:"name"`
	GID  int    `yaml:"gid"`
}

// Owner gives the entries under an image path an owner other than 0:0.
type Owner struct {
	Path string `yaml:"path"`
	UID  int    `yaml:"uid"`
	GID  int    `yaml:"gid"`
}

// prunedDirs are dropped from packages unless Keep names them.
var prunedDirs = []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "usr/share/bug"}

var unknownField = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`line (\d+): field (\S+) not found`) })

// ParseSpec reads a YAML spec strictly: an unknown key, a second
// document or a value of the wrong type is an error naming it.
func ParseSpec(b []byte) (*Spec, error) {
	var s Spec
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&s); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			if m := unknownField().FindStringSubmatch(te.Errors[0]); m != nil {
				return nil, fmt.Errorf("%w: line %s: unknown key %q", ErrSpec, m[1], m[2])
			}
			return nil, fmt.Errorf("%w: %s", ErrSpec, te.Errors[0])
		}
		if err.Error() == "EOF" {
			return &s, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrSpec, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var more yaml.Node
	if d.Decode(&more) == nil {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrSpec)
	}
	return &s, nil
}

var (
	debName  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?$`) })
	userName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`) })
	envName  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	portSpec = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{1,5}(/(tcp|udp|sctp))?$`) })
)

// Validate checks the spec before anything is downloaded.
func (s *Spec) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrSpec}, a...)...) }
	for _, p := range s.Debs {
		if !debName().MatchString(p) {
			return bad("debs: %q is not a Debian package name", p)
		}
	}
	if len(s.Exec) == 0 {
		return bad("no exec: say which program the image runs (--exec or exec:)")
	}
	for _, p := range append(append([]string{s.Exec[0], s.WorkDir}, s.Programs...), s.Volumes...) {
		if p != "" && !path.IsAbs(p) {
			return bad("%q is not an absolute path", p)
		}
	}
	users := map[string]bool{"root": true}
	for _, u := range s.Users {
		if !userName().MatchString(u.Name) {
			return bad("users: %q is not a user name", u.Name)
		}
		users[u.Name] = true
	}
	for _, g := range s.Groups {
		if !userName().MatchString(g.Name) {
			return bad("groups: %q is not a group name", g.Name)
		}
	}
	if s.User != "" && !userName().MatchString(s.User) {
		if _, err := strconv.Atoi(s.User); err != nil {
			return bad("user: %q is neither a name nor a number", s.User)
		}
	}
	for _, e := range s.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || !envName().MatchString(k) {
			return bad("env: %q is not NAME=VALUE", e)
		}
	}
	for _, p := range s.Ports {
		if !portSpec().MatchString(p) {
			return bad("ports: %q is not PORT[/tcp|udp|sctp]", p)
		}
	}
	for _, p := range s.Paths {
		host, img, ok := strings.Cut(p, ":")
		if !path.IsAbs(host) || (ok && !path.IsAbs(img)) {
			return bad("paths: %q is not HOSTPATH[:IMAGEPATH] with absolute paths", p)
		}
	}
	return nil
}

// SplitCommand splits a --exec string into words: blanks separate them,
// single or double quotes keep blanks (and make empty words), and
// nothing else is special.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%w: unterminated quote in %q", ErrSpec, s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
