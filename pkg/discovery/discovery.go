// Package discovery turns an appc image name and labels into download URLs
// by appc meta discovery: it fetches https://NAME?ac-discovery=1, then each
// parent path, and renders the first matching
//
//	<meta name="ac-discovery" content="PREFIX URL-TEMPLATE">
//
// with {name}, {version} ("latest" unless given), {os}, {arch}, any other
// label, and {ext} ("aci" for the image, "aci.asc" for its signature).
// <meta name="ac-discovery-pubkeys" content="PREFIX URL"> tags found on the
// way are returned for `skiff trust`.
//
// appc/spec's own discovery package is not used: it sends every request
// through a package-global http.Client, without a context, so callers cannot
// choose TLS roots, proxies or timeouts per fetch.
package discovery

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/appc/spec/schema/types"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// maxPage bounds how much of a discovery page is read.
const maxPage = 1 << 20

// Ref is an image reference by appc name: the name and the labels asked for.
type Ref struct {
	Name   string
	Labels map[string]string
}

// ParseRef parses "example.com/app", "example.com/app:1.0" or
// "example.com/app:1.0,os=linux,arch=amd64" (the colon is short for
// ",version=").
func ParseRef(s string) (Ref, error) {
	parts := strings.Split(s, ",")
	name, version, hasVersion := strings.Cut(parts[0], ":")
	if _, err := types.NewACIdentifier(name); err != nil {
		return Ref{}, fmt.Errorf("parse %q: %w: %w", s, ErrBadRef, err)
	}
	ref := Ref{Name: name, Labels: map[string]string{}}
	if hasVersion {
		ref.Labels["version"] = version
	}
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if _, err := types.NewACIdentifier(k); !ok || err != nil || v == "" {
			return Ref{}, fmt.Errorf("parse %q: %w: label %q is not key=value", s, ErrBadRef, kv)
		}
		if _, dup := ref.Labels[k]; dup {
			return Ref{}, fmt.Errorf("parse %q: %w: label %q given twice", s, ErrBadRef, k)
		}
		ref.Labels[k] = v
	}
	if strings.ContainsRune(version, ':') || (hasVersion && version == "") {
		return Ref{}, fmt.Errorf("parse %q: %w: bad version", s, ErrBadRef)
	}
	return ref, nil
}

// Endpoint is where one image and its detached signature can be downloaded.
type Endpoint struct {
	ACI       string
	Signature string
}

// Result is what discovery found for a name.
type Result struct {
	Endpoints  []Endpoint // in page order; at least one
	PublicKeys []string   // URLs of keys offered for the name, may be empty
}

// Client performs discovery. The zero value uses http.DefaultClient and
// refuses plain HTTP.
type Client struct {
	HTTP *http.Client
	// InsecureHTTP lets a page be fetched over plain http when https fails.
	InsecureHTTP bool
}

// Discover finds where to download ref, walking up the name's path until a
// page offers a template that renders completely.
func (c *Client) Discover(ctx context.Context, ref Ref) (*Result, error) {
	vars := map[string]string{"version": "latest"}
	maps.Copy(vars, ref.Labels)
	vars["name"] = ref.Name

	var tried []string
	res := &Result{}
	for p := ref.Name; p != ""; p = parent(p) {
		metas, err := c.page(ctx, p)
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		for _, m := range metas {
			if !strings.HasPrefix(ref.Name, m.prefix) {
				continue
			}
			switch m.name {
			case "ac-discovery":
				aci, err1 := render(m.url, vars, "aci")
				asc, err2 := render(m.url, vars, "aci.asc")
				if err1 != nil || err2 != nil {
					tried = append(tried, fmt.Sprintf("%s: template %q: %v", p, m.url, err1))
					continue
				}
				res.Endpoints = append(res.Endpoints, Endpoint{ACI: aci, Signature: asc})
			case "ac-discovery-pubkeys":
				res.PublicKeys = append(res.PublicKeys, m.url)
			}
		}
		if len(res.Endpoints) > 0 {
			return res, nil
		}
		tried = append(tried, p+": no matching ac-discovery tag")
	}
	return nil, fmt.Errorf("discover %q: %w (%s)", ref.Name, ErrNotFound, strings.Join(tried, "; "))
}

// PublicKeys finds the keys offered for name, as rkt's trust does: the
// ac-discovery-pubkeys tags whose prefix covers name, from the first page
// up its path that has any.
func (c *Client) PublicKeys(ctx context.Context, name string) ([]string, error) {
	var tried []string
	for p := name; p != ""; p = parent(p) {
		metas, err := c.page(ctx, p)
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		var keys []string
		for _, m := range metas {
			if m.name == "ac-discovery-pubkeys" && strings.HasPrefix(name, m.prefix) {
				keys = append(keys, m.url)
			}
		}
		if len(keys) > 0 {
			return keys, nil
		}
		tried = append(tried, p+": no matching ac-discovery-pubkeys tag")
	}
	return nil, fmt.Errorf("discover keys for %q: %w (%s)", name, ErrNoKeys, strings.Join(tried, "; "))
}

// Get fetches a small document (a public key) from url: https, or plain
// http only when InsecureHTTP allows it; at most 1 MiB.
func (c *Client) Get(ctx context.Context, url string) ([]byte, error) {
	if !strings.HasPrefix(url, "https://") && !(c.InsecureHTTP && strings.HasPrefix(url, "http://")) {
		return nil, fmt.Errorf("GET %s: %w", url, ErrScheme)
	}
	b, err := c.get(ctx, url)
	return []byte(b), err
}

func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}

type meta struct{ name, prefix, url string }

// page fetches one discovery page over https, or http if allowed and
// https failed, and returns its ac-* meta tags.
func (c *Client) page(ctx context.Context, p string) ([]meta, error) {
	body, err := c.get(ctx, "https://"+p+"?ac-discovery=1")
	if err != nil && c.InsecureHTTP {
		var err2 error
		if body, err2 = c.get(ctx, "http://"+p+"?ac-discovery=1"); err2 == nil {
			err = nil
		} else {
			err = fmt.Errorf("%w; %w", err, err2)
		}
	}
	if err != nil {
		return nil, err
	}
	var metas []meta
	z := html.NewTokenizer(strings.NewReader(body))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return metas, nil
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			if tok.DataAtom != atom.Meta {
				continue
			}
			var m meta
			for _, a := range tok.Attr {
				switch a.Key {
				case "name":
					m.name = a.Val
				case "content":
					if f := strings.Fields(a.Val); len(f) == 2 {
						m.prefix, m.url = f[0], f[1]
					}
				}
			}
			if strings.HasPrefix(m.name, "ac-discovery") && m.url != "" {
				metas = append(metas, m)
			}
		}
	}
}

func (c *Client) get(ctx context.Context, url string) (string, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if !c.InsecureHTTP && resp.Request.URL.Scheme != "https" {
		return "", fmt.Errorf("GET %s: redirected to plain http", url)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPage))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	return string(b), nil
}

var placeholder = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{[^{}]*\}`) })

func render(tpl string, vars map[string]string, ext string) (string, error) {
	out := placeholder().ReplaceAllStringFunc(tpl, func(ph string) string {
		k := ph[1 : len(ph)-1]
		if k == "ext" {
			return ext
		}
		if v, ok := vars[k]; ok {
			return v
		}
		return ph
	})
	if left := placeholder().FindString(out); left != "" {
		return "", fmt.Errorf("no value for %s", left)
	}
	return out, nil
}
