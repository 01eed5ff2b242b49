package build

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Options are the inputs of a build that are not in the spec.
type Options struct {
	// Lock, if not nil, pins the packages: exactly these are installed.
	Lock Lock
	// Epoch is the mtime of every entry and the image's creation time
	// (SOURCE_DATE_EPOCH; 0 leaves "created" out).
	Epoch int64
	// TempDir holds the downloads while the build runs; it is removed.
	TempDir string
	// BaseDir, if set, is the rootfs of the base image: all of it goes
	// into the image, owners kept, under what the build adds.
	BaseDir string
	Log     *slog.Logger
}

// Result is a built image, not yet written anywhere.
type Result struct {
	Image *Image
	Lock  Lock  // the packages installed
	Files int   // entries in the layer
	Size  int64 // bytes of file content
}

// Build assembles the image s describes: packages downloaded and
// unpacked, host paths added, the ELF closure of every program taken,
// users and groups generated. Packages named in debs keep all their
// files but the pruned ones; packages pulled in as dependencies give
// only the files the ELF closure needs.
func Build(ctx context.Context, s *Spec, o Options) (*Result, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tmp, err := os.MkdirTemp(o.TempDir, "skiff-build-")
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	defer os.RemoveAll(tmp)

	lock := o.Lock
	if len(s.Debs) > 0 && lock == nil {
		if lock, err = resolvePackages(ctx, s.Debs, s.Depends == nil || *s.Depends); err != nil {
			return nil, fmt.Errorf("resolve packages: %w", err)
		}
		log.Debug("resolved packages", "count", len(lock))
	}
	if lock != nil {
		have := map[string]bool{}
		for _, p := range lock {
			have[p.Name] = true
		}
		for _, d := range s.Debs {
			if !have[d] {
				return nil, fmt.Errorf("%w: the lock file does not list %s (remove the lock to resolve again)", ErrSpec, d)
			}
		}
	}
	all := tree{}   // every file of every input, for lookups
	image := tree{} // what the image holds
	if o.BaseDir != "" {
		if err := all.add(o.BaseDir, "", "base", true); err != nil {
			return nil, fmt.Errorf("base: %w", err)
		}
		for k, n := range all {
			image[k] = n
		}
	}
	if len(lock) > 0 {
		roots, err := download(ctx, lock, tmp)
		if err != nil {
			return nil, fmt.Errorf("download packages: %w", err)
		}
		explicit := map[string]bool{}
		for _, d := range s.Debs {
			explicit[d] = true
		}
		for _, p := range lock { // sorted: a later package's file wins, always the same one
			t := tree{}
			if err := t.addHost(roots[p.Name], "", p.Name); err != nil {
				return nil, fmt.Errorf("unpack %s: %w", p.Name, err)
			}
			for k, n := range t {
				all[k] = n
				if explicit[p.Name] && !pruned(k, s.Keep) {
					image[k] = n
				}
			}
		}
	}
	for _, p := range s.Paths {
		host, dst, ok := strings.Cut(p, ":")
		if !ok {
			dst = host
		}
		if _, err := os.Lstat(host); err != nil {
			return nil, fmt.Errorf("path %s: %w", host, err)
		}
		t := tree{}
		if err := t.addHost(host, dst, host); err != nil {
			return nil, fmt.Errorf("path %s: %w", host, err)
		}
		for k, n := range t {
			all[k], image[k] = n, n
		}
	}
	// The programs: exec, those listed, and every ELF file the image holds.
	programs := append([]string{s.Exec[0]}, s.Programs...)
	for k, n := range image {
		if n.typ == tar.TypeReg && n.mode&0o111 != 0 && n.from != "base" {
			programs = append(programs, "/"+k)
		}
	}
	sort.Strings(programs[1+len(s.Programs):])
	files, extra, err := all.closure(programs)
	if err != nil {
		return nil, err
	}
	for k := range files {
		image[k] = all[k]
	}
	env := append([]string{}, s.Env...)
	if len(extra) > 0 && !hasEnv(env, "LD_LIBRARY_PATH") {
		env = append(env, "LD_LIBRARY_PATH="+strings.Join(extra, ":"))
	}
	if !hasEnv(env, "PATH") {
		env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	}
	if err := addUsers(image, s); err != nil {
		return nil, err
	}
	for _, v := range s.Volumes {
		if _, ok := image[clean(v)]; !ok {
			image[clean(v)] = &node{typ: tar.TypeDir, mode: 0o755}
		}
	}
	if s.WorkDir != "" {
		if _, ok := image[clean(s.WorkDir)]; !ok {
			image[clean(s.WorkDir)] = &node{typ: tar.TypeDir, mode: 0o755}
		}
	}
	img, err := newImage(image, s, env, o.Epoch)
	if err != nil {
		return nil, err
	}
	r := &Result{Image: img, Lock: lock}
	for _, n := range image {
		r.Files++
		r.Size += n.size + int64(len(n.data))
	}
	return r, nil
}

func hasEnv(env []string, name string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, name+"=") {
			return true
		}
	}
	return false
}

// addUsers writes /etc/passwd and /etc/group when the spec names users
// or groups: root, then each user (uids from 1000 in order where the
// spec gives none), each with a group of its own name unless it names a
// gid, then the spec's groups.
func addUsers(t tree, s *Spec) error {
	users := append([]User{}, s.Users...)
	known := map[string]bool{"root": true}
	for _, u := range users {
		known[u.Name] = true
	}
	if s.User != "" && !known[s.User] {
		if _, err := strconv.Atoi(s.User); err != nil {
			users = append(users, User{Name: s.User})
		}
	}
	if len(users) == 0 && len(s.Groups) == 0 {
		return nil
	}
	var passwd, group bytes.Buffer
	passwd.WriteString("root:x:0:0:root:/root:/sbin/nologin\n")
	group.WriteString("root:x:0:\n")
	next := 1000
	used := map[int]bool{0: true}
	for _, u := range users {
		if u.UID != nil {
			used[*u.UID] = true
		}
	}
	seenGroup := map[string]bool{"root": true}
	for _, u := range users {
		if u.Name == "root" {
			continue
		}
		uid := 0
		if u.UID != nil {
			uid = *u.UID
		} else {
			for used[next] {
				next++
			}
			uid = next
			used[uid] = true
		}
		gid := uid
		if u.GID != nil {
			gid = *u.GID
		} else if !seenGroup[u.Name] {
			seenGroup[u.Name] = true
			fmt.Fprintf(&group, "%s:x:%d:\n", u.Name, gid)
		}
		home := u.Home
		if home == "" {
			home = "/"
		}
		if !path.IsAbs(home) || strings.ContainsAny(home, ":\n") {
			return fmt.Errorf("%w: users: home %q of %s is not an absolute path", ErrSpec, home, u.Name)
		}
		fmt.Fprintf(&passwd, "%s:x:%d:%d::%s:/sbin/nologin\n", u.Name, uid, gid, home)
	}
	for _, g := range s.Groups {
		if !seenGroup[g.Name] {
			seenGroup[g.Name] = true
			fmt.Fprintf(&group, "%s:x:%d:\n", g.Name, g.GID)
		}
	}
	t["etc/passwd"] = &node{typ: tar.TypeReg, mode: 0o644, data: passwd.Bytes(), from: "users"}
	t["etc/group"] = &node{typ: tar.TypeReg, mode: 0o644, data: group.Bytes(), from: "users"}
	return nil
}
