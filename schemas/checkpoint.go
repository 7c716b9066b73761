package schemas

// Checkpoint is one published model version of a layer: what the learner
// writes to the models bucket (BucketModels, its index in BucketLearner)
// and what agent workers read back to serve.
type Checkpoint struct {
	// Layer is the layer the model decides for.
	Layer Layer
	// Version is the policy version the model's decisions carry
	// (dqn "e<episode>-s<steps>", ppo "v<n>").
	Version string
	// InForce is the layer interval (day or hour index of the run) from
	// which the model decides.
	InForce int64
	// Data is the checkpoint file (dqn's tar archive, ppo's safetensors).
	Data []byte
}
