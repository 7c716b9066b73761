//go:build !integration

package kafkatest

// useReal is false: New starts an embedded broker.
const useReal = false
