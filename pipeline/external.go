package pipeline

import (
	"context"
	"errors"

	"github.com/strata-rl/strata/schemas"
)

// PolicyExternal is the policy name of a layer decided outside the
// process: a worker of another process (or language) follows the layer's
// state subject and publishes its decision batches
// (docs/worker-contract.md).
const PolicyExternal = "external"

// ExternalPolicy enables a layer that no in-process worker serves: the
// twin waits for the layer's decision batches and ClosedLoop starts no
// worker for it.
type ExternalPolicy struct{}

// Name returns PolicyExternal.
func (ExternalPolicy) Name() string { return PolicyExternal }

// Version returns "": the deciding worker stamps its own.
func (ExternalPolicy) Version() string { return "" }

// Decide fails: an external layer is never decided in process.
func (ExternalPolicy) Decide(context.Context, *schemas.StateBatch, *schemas.DecisionBatch) error {
	return errors.New("an external layer is decided outside this process")
}
