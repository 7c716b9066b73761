// Package learner is the training side of the hierarchy: it turns the
// twin's learner transitions (strata.transitions.v1) into versioned model
// checkpoints, and it lets agent workers serve those checkpoints from the
// tick each one names.
//
// A Learner keeps one DQN learner (strategic, off-policy from its replay
// buffer) and one PPO learner (tactical, on-policy: only transitions of the
// version being served enter its rollout). The twin writes a layer's
// transitions interval by interval and closes each interval with an
// end-of-interval marker that counts them; the learner holds an interval
// until it has them all, then feeds them in a fixed order (sorted by app
// and function), so training does not depend on partitioning or timing.
// After interval i it publishes, through a Store, any new checkpoint as
// in force from interval i+1, then its progress (interval i done).
//
// A Follower is the worker side: a policy that, before deciding interval
// i in replay, waits until the learner's progress has reached i−1 and then
// serves the newest checkpoint in force at i. The decisions of a run
// therefore depend only on the trace, the configuration and the seeds,
// never on how fast the learner trains or the replay runs. In live mode a
// Follower does not wait and switches to a new checkpoint on the first
// tick after it arrives.
//
// The package does no I/O of its own: the Store and Models interfaces are
// implemented over a JetStream key-value bucket and object store by
// infra/natsbus, and the transitions are read from Kafka by the caller.
// Training runs on the CPU through gorgonia in agents/nn; the algorithms
// in agents/dqn and agents/ppo do not know about this package, so another
// backend can be added below them without touching it.
package learner
