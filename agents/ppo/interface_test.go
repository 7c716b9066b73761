package ppo_test

import (
	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/ppo"
)

// The serving policy has agents.Policy's method set.
var _ agents.Policy = (*ppo.Policy)(nil)
