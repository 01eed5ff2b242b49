package journal

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The layout of a new, empty journal file as journald 252 creates it
// (systemd's docs/JOURNAL_FILE_FORMAT.md): the header, then the field and
// the data hash tables, each an object with a 16-byte header, in a file
// allocated 8 MiB at a time.
const (
	fileHeaderSize    = 264
	objectHeaderSize  = 16
	hashItemSize      = 16
	fieldHashItems    = 333    // DEFAULT_FIELD_HASH_TABLE_SIZE
	dataHashItems     = 233016 // journald's for a 128 MiB maximum file size
	fileAllocation    = 8 << 20
	objectDataHash    = 4
	objectFieldHash   = 5
	incompatKeyedHash = 1 << 2
	incompatZstd      = 1 << 3
	incompatCompact   = 1 << 4
)

// Precreate creates path as the empty, offline system journal of the
// machine whose id (32 hex digits) is given, as journald would create it,
// sparse. journald adopts an existing file and writes into its allocated
// space: a new file it would allocate itself, and where fallocate is
// missing (9p, which stage1-kvm's guest writes its journal over) glibc
// emulates that with a write every 4 KiB, 2048 round trips to the host
// before journald's first log line. A file that exists is left alone.
func Precreate(path, machineID string) error {
	mid, err := hex.DecodeString(machineID)
	if err != nil || len(mid) != 16 {
		return fmt.Errorf("precreate journal: bad machine id %q", machineID)
	}
	b := make([]byte, fileHeaderSize+objectHeaderSize)
	le := binary.LittleEndian
	copy(b, "LPKSHHRH")
	le.PutUint32(b[12:], incompatKeyedHash|incompatZstd|incompatCompact)
	// b[16], the state, is 0: offline.
	if _, err := rand.Read(b[24:40]); err != nil { // file id
		return fmt.Errorf("precreate journal: %w", err)
	}
	copy(b[40:56], mid)
	copy(b[72:88], b[24:40]) // the seqnum id, as journald sets it
	fieldObj := uint64(fileHeaderSize)
	dataObj := align8(fieldObj + objectHeaderSize + fieldHashItems*hashItemSize)
	for i, v := range []uint64{
		fileHeaderSize, fileAllocation - fileHeaderSize, // header and arena sizes
		dataObj + objectHeaderSize, dataHashItems * hashItemSize,
		fieldObj + objectHeaderSize, fieldHashItems * hashItemSize,
		dataObj, 2, // the tail object, the object count
	} {
		le.PutUint64(b[88+8*i:], v)
	}
	obj := func(typ byte, items uint64) []byte {
		h := make([]byte, objectHeaderSize)
		h[0] = typ
		le.PutUint64(h[8:], objectHeaderSize+items*hashItemSize)
		return h
	}
	copy(b[fieldObj:], obj(objectFieldHash, fieldHashItems))

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("precreate journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("precreate journal: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		_, err = f.WriteAt(obj(objectDataHash, dataHashItems), int64(dataObj))
	}
	if err == nil {
		err = f.Truncate(fileAllocation)
	}
	if err = errors.Join(err, f.Close()); err != nil {
		os.Remove(path)
		return fmt.Errorf("precreate journal: %w", err)
	}
	return nil
}

func align8(n uint64) uint64 { return (n + 7) &^ 7 }
