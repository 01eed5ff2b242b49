package appspec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiffpod/skiff/pkg/safefile"
)

// resolveUser turns appc's user and group (a number, a name looked up in
// the image's /etc/passwd and /etc/group, or an absolute path whose owner
// is taken) into numeric ids. It reads only through root: the host's NSS
// knows nothing about the image's users.
func resolveUser(root *os.Root, user, group string, supplementary []int) (specs.User, error) {
	var u specs.User
	passwd, err := readDB(root, "etc/passwd")
	if err != nil {
		return u, err
	}
	groups, err := readDB(root, "etc/group")
	if err != nil {
		return u, err
	}

	name := ""
	switch uid, isNum, err := resolveID(root, user, passwd, 0); {
	case err != nil:
		return u, fmt.Errorf("resolve user %q: %w", user, err)
	case isNum:
		u.UID = uid
		// A numeric user still gets the groups its passwd name is a member of.
		if e := findByID(passwd, uid); e != nil {
			name = e[0]
		}
	default:
		u.UID, name = uid, user
	}
	gid, _, err := resolveID(root, group, groups, 1)
	if err != nil {
		return u, fmt.Errorf("resolve group %q: %w", group, err)
	}
	u.GID = gid

	for _, g := range supplementary {
		if g < 0 || g > maxID {
			return u, fmt.Errorf("supplementary group: %w: %d", ErrBadID, g)
		}
		u.AdditionalGids = append(u.AdditionalGids, uint32(g))
	}
	if name != "" {
		for _, e := range groups {
			if len(e) < 4 || !slices.Contains(strings.Split(e[3], ","), name) {
				continue
			}
			if id, err := strconv.ParseUint(e[2], 10, 32); err == nil && id <= maxID {
				u.AdditionalGids = append(u.AdditionalGids, uint32(id))
			}
		}
	}
	slices.Sort(u.AdditionalGids)
	u.AdditionalGids = slices.Compact(u.AdditionalGids)
	return u, nil
}

// resolveID resolves one user or group field; field is 0 for the owner uid
// of a path, 1 for its gid. isNum reports a plain number.
func resolveID(root *os.Root, s string, db [][]string, field int) (id uint32, isNum bool, err error) {
	if s == "" {
		return 0, true, nil // appc requires both; root is the only sane default
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		id, err := checkID(n)
		return id, true, err
	}
	if strings.HasPrefix(s, "/") {
		fi, err := root.Stat(strings.TrimPrefix(s, "/"))
		if err != nil {
			return 0, false, err
		}
		st := fi.Sys().(*syscall.Stat_t)
		id, err := checkID(uint64([2]uint32{st.Uid, st.Gid}[field]))
		return id, false, err
	}
	for _, e := range db {
		if len(e) >= 3 && e[0] == s {
			n, err := strconv.ParseUint(e[2], 10, 32)
			if err != nil {
				return 0, false, fmt.Errorf("bad id %q: %w", e[2], err)
			}
			id, err := checkID(n)
			return id, false, err
		}
	}
	return 0, false, ErrUnknownUser
}

// maxID is the largest uid or gid skiff gives an app: above 2^31-1, ids
// alias the overflow (65534) and nobody ids and tools disagree on their
// sign; image extraction refuses such owners too.
const maxID = 1<<31 - 1

func checkID(n uint64) (uint32, error) {
	if n > maxID {
		return 0, fmt.Errorf("%w: %d is above %d", ErrBadID, n, maxID)
	}
	return uint32(n), nil
}

func findByID(db [][]string, id uint32) []string {
	want := strconv.FormatUint(uint64(id), 10)
	for _, e := range db {
		if len(e) >= 3 && e[2] == want {
			return e
		}
	}
	return nil
}

// maxDBSize bounds the image's /etc/passwd and /etc/group: large sites
// have a few MiB; an image's are a few KiB.
const maxDBSize = 16 << 20

// readDB reads a colon-separated database such as /etc/passwd from the
// image; a missing file is an empty database.
func readDB(root *os.Root, name string) ([][]string, error) {
	b, err := safefile.ReadFileIn(root, name, maxDBSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read image /%s: %w", name, err)
	}
	var db [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		db = append(db, strings.Split(line, ":"))
	}
	return db, sc.Err()
}
