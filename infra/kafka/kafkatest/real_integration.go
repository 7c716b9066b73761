//go:build integration

package kafkatest

// useReal is true under the integration tag: New uses STRATA_KAFKA's brokers.
const useReal = true
