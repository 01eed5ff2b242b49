package fetch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/skiffpod/skiff/pkg/store"
)

// maxSignature bounds a downloaded signature; real ones are under 1 KiB.
const maxSignature = 1 << 20

// httpError is an unexpected HTTP status.
type httpError struct {
	url    string
	code   int
	status string
}

func (e *httpError) Error() string { return "GET " + e.url + ": " + e.status }

// request GETs url, refusing a redirect to plain http without InsecureHTTP.
func (f *Fetcher) request(ctx context.Context, url string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := f.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if err := f.checkScheme(resp.Request.URL.String()); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: redirected: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified {
		resp.Body.Close()
		return nil, &httpError{url: url, code: resp.StatusCode, status: resp.Status}
	}
	return resp, nil
}

// get downloads a small object into memory.
func (f *Fetcher) get(ctx context.Context, url string) ([]byte, error) {
	resp, err := f.request(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSignature+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(b) > maxSignature {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", url, maxSignature)
	}
	return b, nil
}

// download fetches url into a synced temp file in TmpDir, positioned at
// its start. With prev, the request is conditional; if the server says
// nothing changed, the file is nil. The record describes the response.
func (f *Fetcher) download(ctx context.Context, url string, prev *store.RemoteRecord) (*os.File, store.RemoteRecord, error) {
	hdr := http.Header{}
	if prev != nil && prev.ETag != "" {
		hdr.Set("If-None-Match", prev.ETag)
	}
	if prev != nil && prev.LastModified != "" {
		hdr.Set("If-Modified-Since", prev.LastModified)
	}
	resp, err := f.request(ctx, url, hdr)
	if err != nil {
		return nil, store.RemoteRecord{}, err
	}
	defer resp.Body.Close()
	rec := store.RemoteRecord{
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
		FetchedAt:    time.Now(),
	}
	if resp.StatusCode == http.StatusNotModified {
		if prev == nil {
			return nil, rec, fmt.Errorf("GET %s: unasked %s", url, resp.Status)
		}
		f.log().Debug("not modified", "url", url)
		return nil, rec, nil
	}

	tmp, err := os.CreateTemp(f.TmpDir, "fetch-*.part")
	if err != nil {
		return nil, rec, fmt.Errorf("download %s: %w", url, err)
	}
	body, done := f.progress(ctx, url, resp.ContentLength, resp.Body)
	_, err = io.Copy(tmp, body)
	done(err == nil)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, rec, fmt.Errorf("download %s: %w", url, err)
	}
	return tmp, rec, nil
}

// progress wraps body to draw a bar when Progress is a terminal, or says
// one line otherwise. done must be called when the copy ends.
func (f *Fetcher) progress(ctx context.Context, url string, size int64, body io.Reader) (io.Reader, func(ok bool)) {
	if f.Progress == nil {
		return body, func(bool) {}
	}
	tty, ok := f.Progress.(*os.File)
	if !ok || !term.IsTerminal(int(tty.Fd())) {
		fmt.Fprintf(f.Progress, "Downloading %s\n", url)
		return body, func(bool) {}
	}
	p := mpb.NewWithContext(ctx, mpb.WithOutput(f.Progress), mpb.WithWidth(40))
	bar := p.AddBar(max(size, 0),
		mpb.PrependDecorators(decor.Name(path.Base(url), decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")))
	return bar.ProxyReader(body), func(ok bool) {
		if ok {
			bar.SetTotal(-1, true) // completes a bar of unknown size
		} else {
			bar.Abort(false)
		}
		p.Wait()
	}
}
