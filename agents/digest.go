package agents

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-rl/strata/schemas"
)

// ModelsDigest identifies the checkpoints that the learned layers among
// policies (layer → policy name) serve from the models directory dir: the
// hex SHA-256 over, slowest layer first, each such layer's name and the
// SHA-256 of its CheckpointFile. A layer is learned when its policy is
// LearnedName(layer) (parameters after a colon aside); one whose
// checkpoint is not in dir is left out, as a training run's policies
// come from memory. The digest is "" when dir is "" or no checkpoint
// counts. Two runs with the same digest served the same bytes; a
// directory trained again gets another digest.
func ModelsDigest(dir string, policies map[schemas.Layer]string) (string, error) {
	if dir == "" {
		return "", nil
	}
	h := sha256.New()
	n := 0
	for _, l := range schemas.Layers {
		name, _, _ := strings.Cut(policies[l], ":")
		if name == "" || name != LearnedName(l) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, CheckpointFile(l)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("digesting the %s checkpoint of %s: %w", l, dir, err)
		}
		fmt.Fprintf(h, "%s %x\n", l, sha256.Sum256(data))
		n++
	}
	if n == 0 {
		return "", nil
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
