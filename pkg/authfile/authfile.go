// Package authfile reads and writes docker-style registry auth files
// ({"auths": {"HOST[:PORT]": {"auth": base64(user:password)}}}), the
// format of podman's auth.json and Docker's ~/.docker/config.json. Reads
// search several files in order; writes replace one file atomically, keep
// every other key of it, and leave it readable by its owner only.
package authfile

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/strictjson"
)

// maxFile bounds an auth file (Docker's config.json is a few KiB).
const maxFile = 1 << 20

// Cred is one registry's credentials.
type Cred struct {
	Username      string
	Password      string
	IdentityToken string
	RegistryToken string
}

type entry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// Lookup returns the credentials for registry from the first of files
// that has an entry for it, and that file. Missing files are skipped;
// no entry anywhere is ok == false (anonymous).
func Lookup(files []string, registry string) (c Cred, file string, ok bool, err error) {
	for _, f := range files {
		auths, err := readAuths(f)
		if err != nil {
			return Cred{}, "", false, err
		}
		for key, raw := range auths {
			if Key(key) != registry {
				continue
			}
			var e entry
			if err := strictjson.Unmarshal(raw, &e); err != nil {
				return Cred{}, "", false, fmt.Errorf("read auth file %s: %w: entry %q: %w", f, ErrBadFile, key, err)
			}
			c = Cred{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
			if e.Auth != "" {
				dec, err := base64.StdEncoding.DecodeString(e.Auth)
				user, pass, found := strings.Cut(string(dec), ":")
				if err != nil || !found {
					return Cred{}, "", false, fmt.Errorf("read auth file %s: %w: entry %q: auth is not base64 of user:password", f, ErrBadFile, key)
				}
				c.Username, c.Password = user, pass
			}
			return c, f, true, nil
		}
	}
	return Cred{}, "", false, nil
}

// Set stores user and password for registry in file, replacing any entry
// for it (also one spelled as a URL) and keeping everything else.
func Set(file, registry, user, password string) error {
	if err := CheckRegistry(registry); err != nil {
		return err
	}
	return update(file, func(auths map[string]json.RawMessage) error {
		drop(auths, registry)
		raw, err := json.Marshal(entry{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + password))})
		if err != nil {
			return err
		}
		auths[registry] = raw
		return nil
	})
}

// Remove deletes registry's entries from file; ErrNotLoggedIn when there
// were none.
func Remove(file, registry string) error {
	return update(file, func(auths map[string]json.RawMessage) error {
		if !drop(auths, registry) {
			return fmt.Errorf("logout %s: %w (no entry in %s)", registry, ErrNotLoggedIn, file)
		}
		return nil
	})
}

// RemoveAll deletes every entry of file.
func RemoveAll(file string) error {
	return update(file, func(auths map[string]json.RawMessage) error {
		clear(auths)
		return nil
	})
}

// drop removes every key of auths that names registry.
func drop(auths map[string]json.RawMessage, registry string) bool {
	found := false
	for k := range auths {
		if Key(k) == registry {
			delete(auths, k)
			found = true
		}
	}
	return found
}

// update rewrites file with change applied to its "auths", keeping the
// other top-level keys as they were. A missing file starts empty; its
// directory is made (0700) if missing.
func update(file string, change func(map[string]json.RawMessage) error) error {
	doc := map[string]json.RawMessage{}
	b, err := safefile.ReadFile(file, maxFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return fmt.Errorf("write auth file: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read auth file: %w", err)
	case len(bytes.TrimSpace(b)) > 0:
		if err := strictjson.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("read auth file %s: %w: %w", file, ErrBadFile, err)
		}
	}
	auths := map[string]json.RawMessage{}
	if raw, ok := doc["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("read auth file %s: %w: auths: %w", file, ErrBadFile, err)
		}
	}
	if err := change(auths); err != nil {
		return err
	}
	raw, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	doc["auths"] = raw
	out, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return err
	}
	if err := safefile.WriteFile(file, append(out, '\n'), 0o600, true); err != nil {
		return fmt.Errorf("write auth file: %w", err)
	}
	return nil
}

// readAuths returns the "auths" object of file; nothing if it is missing.
func readAuths(file string) (map[string]json.RawMessage, error) {
	b, err := safefile.ReadFile(file, maxFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read auth file: %w", err)
	}
	var doc struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if err := strictjson.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("read auth file %s: %w: %w", file, ErrBadFile, err)
	}
	return doc.Auths, nil
}

// Key normalizes an auth file key ("https://index.docker.io/v1/",
// "quay.io", "localhost:5000") to a registry as imageref spells it.
func Key(k string) string {
	if u, err := url.Parse(k); err == nil && u.Host != "" {
		k = u.Host
	}
	k, _, _ = strings.Cut(k, "/")
	switch k {
	case "index.docker.io", "registry-1.docker.io":
		return imageref.DefaultRegistry
	}
	return k
}

// Registry turns what a user names a registry by ("quay.io",
// "docker://127.0.0.1:5000", "https://index.docker.io/v1/") into the
// spelling the files use, or fails with ErrBadRegistry.
func Registry(s string) (string, error) {
	s = strings.TrimPrefix(s, "docker://")
	if !strings.Contains(s, "://") && strings.Contains(s, "/") {
		return "", fmt.Errorf("%q: %w", s, ErrBadRegistry) // a repository: credentials are per registry
	}
	r := Key(s)
	if err := CheckRegistry(r); err != nil {
		return "", err
	}
	return r, nil
}

// CheckRegistry accepts HOST[:PORT] only.
func CheckRegistry(r string) error {
	if r == "" || strings.Contains(r, "/") || imageref.CheckPrefix(r) != nil {
		return fmt.Errorf("%q: %w", r, ErrBadRegistry)
	}
	return nil
}
