package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skiffpod/skiff/pkg/aci"
)

// benchStore compares importing an image with plainly unpacking it, and
// preparing pods from a small and a large image.
func benchStore(ctx context.Context, cfg config) error {
	dir := filepath.Join(cfg.scratch, "store")
	busybox, redis := filepath.Join(cfg.images, "busybox.aci"), filepath.Join(cfg.images, "redis.aci")
	skiff := func(store string, args ...string) []string {
		return append([]string{"--dir=" + store, "--local-config=" + filepath.Join(dir, "config"), "--insecure-options=image"}, args...)
	}
	// A fresh directory per run, removed untimed afterwards: a fetch into
	// a store that has the image already is a cache hit.
	id := 0
	fresh := func(f func(d string) (time.Duration, error)) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			id++
			d := filepath.Join(dir, "run-"+strconv.Itoa(id))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return 0, err
			}
			t, err := f(d)
			if err != nil {
				return t, err
			}
			return t, os.RemoveAll(d)
		}
	}
	fetch := func(bin string) func() (time.Duration, error) {
		return fresh(func(d string) (time.Duration, error) {
			return timeCmd(ctx, nil, bin, skiff(d, "fetch", redis)...)
		})
	}
	cs := []contender{
		{"skiff fetch redis.aci (empty store)", fetch(cfg.skiff)},
		{"tar -xzf redis.aci", fresh(func(d string) (time.Duration, error) {
			return timeCmd(ctx, nil, "tar", "-xzf", redis, "-C", d)
		})},
	}
	if cfg.base != "" {
		cs = append(cs, contender{"skiff fetch redis.aci (empty store) [base]", fetch(cfg.base)})
	}
	runs, err := interleave(cfg.n, cs)
	if err != nil {
		return err
	}
	sums := printTable(os.Stdout, "store: import (decompress, hash, verify, write, fsync) vs plain unpack, redis.aci",
		cs, runs, 1)
	target(os.Stdout, "skiff fetch ≤ 1.0× tar -xzf", ratio(sums[0].median, sums[1].median), 1.0)

	// Pods from one store where both images are fetched and rendered.
	store := filepath.Join(dir, "store")
	for _, img := range []string{busybox, redis} {
		uuid, err := output(ctx, nil, cfg.skiff, skiff(store, "prepare", img, "--exec=/bin/true")...)
		if err != nil {
			return err
		}
		if _, err := output(ctx, nil, cfg.skiff, skiff(store, "rm", strings.TrimSpace(uuid))...); err != nil {
			return err
		}
	}
	prepare := func(img string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			start := time.Now()
			uuid, err := output(ctx, nil, cfg.skiff, skiff(store, "prepare", img, "--exec=/bin/true")...)
			d := time.Since(start)
			if err != nil {
				return d, err
			}
			_, err = output(ctx, nil, cfg.skiff, skiff(store, "rm", strings.TrimSpace(uuid))...)
			return d, err
		}
	}
	// By name the image comes from the store; by path skiff reads the
	// whole file again to learn its image ID (its hash).
	cs = []contender{
		{"skiff prepare skiff.local/busybox", prepare("skiff.local/busybox")},
		{"skiff prepare skiff.local/redis", prepare("skiff.local/redis")},
		{"skiff prepare bin/images/busybox.aci", prepare(busybox)},
		{"skiff prepare bin/images/redis.aci", prepare(redis)},
	}
	if runs, err = interleave(cfg.n, cs); err != nil {
		return err
	}
	printTable(os.Stdout, "store: prepare a pod (overlays on the rendered images)", cs, runs, 0)
	for _, img := range []string{busybox, redis} {
		n, err := tarSize(img)
		if err != nil {
			return err
		}
		fmt.Printf("  %s: %.1f MB uncompressed\n", filepath.Base(img), float64(n)/1e6)
	}
	return nil
}

// tarSize is the size of an ACI's uncompressed tar.
func tarSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := aci.Decompress(f)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return io.Copy(io.Discard, r)
}
