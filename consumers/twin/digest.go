package twin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"

	"google.golang.org/protobuf/proto"
)

// Digests hashes the decisions and rewards of a run in the order they are
// written, each record in its deterministic protobuf encoding: two runs
// with equal digests wrote byte-identical decisions and rewards tables.
type Digests struct {
	decisions, rewards hash.Hash
}

// NewDigests returns empty digests.
func NewDigests() *Digests {
	return &Digests{decisions: sha256.New(), rewards: sha256.New()}
}

// Add hashes a tick's decisions, then its rewards, as the service writes
// them.
func (d *Digests) Add(out *Output) error {
	for _, m := range out.Decisions {
		if err := d.add(d.decisions, m); err != nil {
			return err
		}
	}
	for _, m := range out.Rewards {
		if err := d.add(d.rewards, m); err != nil {
			return err
		}
	}
	return nil
}

func (d *Digests) add(h hash.Hash, m proto.Message) error {
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding a record to digest: %w", err)
	}
	h.Write(v)
	return nil
}

// Decisions returns the hex SHA-256 of the decisions added so far.
func (d *Digests) Decisions() string { return hex.EncodeToString(d.decisions.Sum(nil)) }

// Rewards returns the hex SHA-256 of the rewards added so far.
func (d *Digests) Rewards() string { return hex.EncodeToString(d.rewards.Sum(nil)) }
