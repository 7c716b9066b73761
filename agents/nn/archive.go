package nn

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// ArchiveEntry is one named file of a checkpoint archive.
type ArchiveEntry struct {
	Name string
	Data []byte
}

// WriteArchive writes entries, in order, as an uncompressed POSIX (ustar)
// tar archive with fixed metadata (mode 0644, Unix-epoch times), so equal
// entries give equal bytes. The dqn and lstm checkpoints are such archives
// of a JSON manifest and safetensors networks.
func WriteArchive(w io.Writer, entries []ArchiveEntry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: 0o644, Size: int64(len(e.Data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing archive entry %s header: %w", e.Name, err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			return fmt.Errorf("writing archive entry %s: %w", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("closing archive: %w", err)
	}
	return nil
}

// ReadArchive reads a tar archive whose entries are among allowed, each at
// most maxBytes long, and returns them by name. An unknown, repeated or
// oversized entry is an error (a corrupt archive cannot allocate without
// bound); which entries are required is the caller's business.
func ReadArchive(r io.Reader, allowed []string, maxBytes int64) (map[string][]byte, error) {
	tr := tar.NewReader(r)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if !slices.Contains(allowed, h.Name) {
			return nil, fmt.Errorf("unexpected entry %q", h.Name)
		}
		if _, dup := out[h.Name]; dup {
			return nil, fmt.Errorf("entry %q twice", h.Name)
		}
		if h.Size < 0 || h.Size > maxBytes {
			return nil, fmt.Errorf("entry %q of %d bytes", h.Name, h.Size)
		}
		data, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", h.Name, err)
		}
		out[h.Name] = data
	}
}

// ReadStateArchive reads a training-state archive (the learners'
// SaveState): every one of entries must be present, and the first of them
// is a JSON manifest, decoded into manifest, whose "format" must equal
// format. A malformed archive or a missing entry is an error wrapping bad;
// another format wraps ErrVersion.
func ReadStateArchive(r io.Reader, entries []string, maxBytes int64, format string, manifest any, bad error) (map[string][]byte, error) {
	raw, err := ReadArchive(r, entries, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bad, err)
	}
	for _, e := range entries {
		if raw[e] == nil {
			return nil, fmt.Errorf("%w: no %s", bad, e)
		}
	}
	var f struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(raw[entries[0]], &f); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", bad, entries[0], err)
	}
	if f.Format != format {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrVersion, f.Format, format)
	}
	if err := json.Unmarshal(raw[entries[0]], manifest); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", bad, entries[0], err)
	}
	return raw, nil
}
