// Package roleconf reads a command's --config FILE: a YAML mapping of flag
// names to values, set on the command's flag set unless the command line
// set them, and, for the commands that build the cloud model, the reward,
// model and catalog sections that override the model's defaults
// (docs/config.md). Errors name the file, the line and the key at fault.
//
// It is wiring, like the rest of pipeline/: the domain packages take the
// model it builds (Config.NewModel), never the file.
package roleconf
