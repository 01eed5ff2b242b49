package simplesign

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/skiffpod/skiff/pkg/imageref"
)

// DirName is the directory, in the local config directory, whose *.yaml
// files name the lookaside stores (containers-registries.d(5) format).
const DirName = "registries.d"

// Bounds: a signature is a few hundred bytes; several may be stored.
const (
	MaxSignature  = 64 << 10
	MaxSignatures = 16
	maxConfigFile = 1 << 20
)

// Config maps registry scopes to lookaside URLs.
type Config struct {
	def    urls            // default-docker
	scopes map[string]urls // "HOST[:PORT][/NAME]" -> URLs
}

// urls are a scope's lookaside, read and written ("" for none).
type urls struct{ read, write string }

type scope struct {
	Lookaside string `yaml:"lookaside"`
	Sigstore  string `yaml:"sigstore"` // the older name of lookaside
	// LookasideStaging is where signatures are written (lookaside if
	// not set), as containers-registries.d(5) says.
	LookasideStaging string `yaml:"lookaside-staging"`
	SigstoreStaging  string `yaml:"sigstore-staging"`
}

type file struct {
	DefaultDocker *scope           `yaml:"default-docker"`
	Docker        map[string]scope `yaml:"docker"`
}

// Load reads every *.yaml file in dir (a missing dir configures nothing).
// A scope named twice, in one file or two, is an error, as in containers.
func Load(dir string) (*Config, error) {
	c := &Config{scopes: map[string]urls{}}
	names, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	sort.Strings(names)
	defFrom := ""
	for _, name := range names {
		f, err := readConfig(name)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w: %w", name, ErrBadConfig, err)
		}
		if f.DefaultDocker != nil {
			if defFrom != "" {
				return nil, fmt.Errorf("load %s: %w: default-docker also set in %s", name, ErrBadConfig, defFrom)
			}
			if c.def, err = f.DefaultDocker.urls(); err != nil {
				return nil, fmt.Errorf("load %s: %w: default-docker: %w", name, ErrBadConfig, err)
			}
			defFrom = name
		}
		for k, s := range f.Docker {
			if err := imageref.CheckPrefix(k); err != nil {
				return nil, fmt.Errorf("load %s: %w: docker: %w", name, ErrBadConfig, err)
			}
			if _, dup := c.scopes[k]; dup {
				return nil, fmt.Errorf("load %s: %w: docker: %q configured twice", name, ErrBadConfig, k)
			}
			if c.scopes[k], err = s.urls(); err != nil {
				return nil, fmt.Errorf("load %s: %w: docker: %q: %w", name, ErrBadConfig, k, err)
			}
		}
	}
	return c, nil
}

func readConfig(name string) (*file, error) {
	fd, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	if fi, err := fd.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(fd, maxConfigFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("larger than %d bytes", maxConfigFile)
	}
	var f file
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

func (s scope) urls() (urls, error) {
	var u urls
	var err error
	if u.read, err = checkURL(cmp.Or(s.Lookaside, s.Sigstore)); err != nil {
		return u, err
	}
	if u.write, err = checkURL(cmp.Or(s.LookasideStaging, s.SigstoreStaging)); err != nil {
		return u, err
	}
	u.write = cmp.Or(u.write, u.read)
	return u, nil
}

// checkURL checks a lookaside URL ("" is none).
func checkURL(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", err
	}
	switch {
	case u.Scheme == "file" && u.Host == "" && filepath.IsAbs(u.Path):
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
	default:
		return "", fmt.Errorf("lookaside %q: want file:///PATH, http:// or https://", v)
	}
	return strings.TrimSuffix(v, "/"), nil
}

// Lookaside returns the lookaside URL for ref: the most specific scope
// (registry/name, then its parents, then the registry), else
// default-docker; "" when none is configured.
func (c *Config) Lookaside(ref imageref.Ref) string { return c.find(ref).read }

// Staging returns where signatures of ref are written: the most specific
// scope's lookaside-staging, else its lookaside; "" when none is
// configured.
func (c *Config) Staging(ref imageref.Ref) string { return c.find(ref).write }

func (c *Config) find(ref imageref.Ref) urls {
	for n := ref.Name(); ; {
		if u, ok := c.scopes[n]; ok {
			return u
		}
		i := strings.LastIndexByte(n, '/')
		if i < 0 {
			return c.def
		}
		n = n[:i]
	}
}

// Signature reads signature-i (from 1) of the image ref with manifest
// digest from the lookaside at base, as skopeo lays it out:
// BASE/NAME@sha256=HEX/signature-i. ok is false when it does not exist
// (the list ends there).
func Signature(ctx context.Context, client *http.Client, base string, ref imageref.Ref, digest string, i int) (sig []byte, ok bool, err error) {
	alg, hex, _ := strings.Cut(digest, ":")
	loc := fmt.Sprintf("%s/%s@%s=%s/signature-%d", base, ref.Repository, alg, hex, i)
	u, err := url.Parse(loc)
	if err != nil {
		return nil, false, fmt.Errorf("read signature %s: %w", loc, err)
	}
	var r io.Reader
	if u.Scheme == "file" {
		f, err := os.Open(u.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read signature: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			return nil, false, fmt.Errorf("read signature %s: not a regular file", u.Path)
		}
		r = f
	} else {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
		if err != nil {
			return nil, false, fmt.Errorf("read signature %s: %w", loc, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, false, fmt.Errorf("read signature: %w", err)
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return nil, false, nil
		case resp.StatusCode != http.StatusOK:
			return nil, false, fmt.Errorf("read signature %s: %s", loc, resp.Status)
		}
		r = resp.Body
	}
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(r, MaxSignature+1)); err != nil {
		return nil, false, fmt.Errorf("read signature %s: %w", loc, err)
	}
	if b.Len() > MaxSignature {
		return nil, false, fmt.Errorf("read signature %s: larger than %d bytes", loc, MaxSignature)
	}
	return b.Bytes(), true, nil
}
