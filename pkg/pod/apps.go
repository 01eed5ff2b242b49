package pod

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/perm"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// The apps record (AppsFile) is what `skiff list` shows of a pod's
// manifest, so that listing a thousand pods does not decode a thousand
// manifests (two thirds of its CPU time). It is derived from the
// manifest, and its writers keep it so: each write of the manifest is
// preceded by ForgetApps and followed by RecordApps, so a crash between
// them leaves no record, never a stale one, and a reader trusts a record
// it finds without looking at the manifest (a stat of it per pod was a
// tenth of a list). A missing record (pods of older versions, a crash)
// or an invalid one sends the reader to the manifest. It also copies the
// pod's created stamp, which never changes once the pod exists: one
// small file read per pod instead of two.
//
//	INO SIZE MTIME CTIME                 (of the manifest; older skiffs check it)
//	CREATED                              (the created stamp; 0 if none)
//	NAME<TAB>IMAGE-ID<TAB>IMAGE-NAME     (one line per app; IDs and names may be empty)

// ForgetApps removes the pod's apps record; a writer of the manifest
// calls it before the write (and RecordApps after), holding the pod's
// lock or its manifest lock.
func (p *Pod) ForgetApps() error {
	if err := os.Remove(p.File(AppsFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forget apps of pod %s: %w", p.UUID, err)
	}
	return nil
}

// RecordApps writes the apps record of the pod's manifest as it is now.
// The caller holds the pod's lock or its manifest lock, as for writing
// the manifest, and calls it after each write of the manifest (and
// ForgetApps before).
func (p *Pod) RecordApps() error {
	d, err := unix.Open(p.Path(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("record apps of pod %s: %w", p.UUID, err)
	}
	defer unix.Close(d)
	id, err := manifestID(d)
	if err != nil {
		return fmt.Errorf("record apps of pod %s: %w", p.UUID, err)
	}
	names, images, imageNames := apps(safefile.ReadFileFD(d, p.Path(), ManifestFile, MaxManifestSize))
	var created int64
	if t := stampOf(safefile.ReadFileFD(d, p.Path(), CreatedFile, MaxStateFileSize)); !t.IsZero() {
		created = t.UnixNano()
	}
	var b strings.Builder
	b.WriteString(id + "\n" + strconv.FormatInt(created, 10) + "\n")
	for i := range names {
		b.WriteString(names[i] + "\t" + images[i] + "\t" + imageNames[i] + "\n")
	}
	tmp := p.File(AppsFile + ".new")
	if err := perm.WriteFile(tmp, []byte(b.String()), true); err != nil {
		return fmt.Errorf("record apps of pod %s: %w", p.UUID, err)
	}
	if err := os.Rename(tmp, p.File(AppsFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("record apps of pod %s: %w", p.UUID, err)
	}
	return nil
}

// manifestID names the manifest below the pod dir d as the record's
// first line does.
func manifestID(d int) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d, ManifestFile, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", fmt.Errorf("%s: %w", ManifestFile, safefile.ErrNotRegular)
	}
	return fmt.Sprintf("%d %d %d %d", st.Ino, st.Size, st.Mtim.Nano(), st.Ctim.Nano()), nil
}

// appsRecord is what an apps record holds.
type appsRecord struct {
	names, images, imageNames []string
	created                   time.Time // zero if the pod had no created stamp
}

// recordedApps reads the apps record below the pod dir d (named path);
// ok is false when there is none or it is not valid: the caller then
// reads the manifest and the stamp.
func recordedApps(d int, path string) (r appsRecord, ok bool) {
	b, err := safefile.ReadFileFD(d, path, AppsFile, MaxManifestSize)
	if err != nil {
		return r, false
	}
	// The first line names the manifest for older skiffs: trusted here
	// (ForgetApps).
	_, rest, _ := strings.Cut(string(b), "\n")
	created, rest, _ := strings.Cut(rest, "\n")
	n, err := strconv.ParseInt(created, 10, 64)
	if err != nil || n < 0 {
		return r, false
	}
	if n > 0 {
		r.created = time.Unix(0, n)
	}
	for line := range strings.Lines(rest) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 3 || !validName(f[0], "-") || f[1] != "" && !validHash(f[1]) || f[2] != "" && !validName(f[2], "-._~/") {
			return appsRecord{}, false
		}
		r.names, r.images, r.imageNames = append(r.names, f[0]), append(r.images, f[1]), append(r.imageNames, f[2])
	}
	return r, true
}

// validHash reports whether s is an appc image ID as list prints it:
// sha512- and lowercase hex.
func validHash(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha512-")
	return ok && hex != "" && strings.Trim(hex, "0123456789abcdef") == ""
}
